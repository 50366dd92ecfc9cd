"""Slug resolution: one query per request, and what it reuses between requests."""

from __future__ import annotations

from registry import actions, routing


def test_unchanged_route_is_resolved_to_the_same_ref(publish, iris_classifier):
    publish(iris_classifier, "iris")
    first = routing.resolve("iris")
    assert routing.resolve("iris") is first


def test_edited_input_schema_is_served_from_the_next_request(publish, numpy_regressor):
    version = publish(numpy_regressor, "diabetes")
    before = routing.resolve("diabetes")
    renamed = [{"name": f"x{i}", "type": "number"} for i in range(10)]
    actions.edit_version(version, input_schema=renamed)
    after = routing.resolve("diabetes")
    assert after is not before
    assert [f["name"] for f in after.input_schema["features"]][:2] == ["x0", "x1"]


def test_activation_is_resolved_from_the_next_request(publish, iris_classifier):
    v1 = publish(iris_classifier, "iris")
    publish(iris_classifier, "iris")
    assert routing.resolve("iris").number == 2
    actions.activate(v1)
    assert routing.resolve("iris").number == 1
    assert routing.resolve("iris", 2).number == 2


def test_remembered_routes_are_bounded(publish, iris_classifier, monkeypatch):
    monkeypatch.setattr(routing, "_MAX_REFS", 2)
    for slug in ("a", "b", "c"):
        publish(iris_classifier, slug)
        routing.resolve(slug)
    assert len(routing._refs) == 2
    assert [key[0] for key in routing._refs] == ["b", "c"]
