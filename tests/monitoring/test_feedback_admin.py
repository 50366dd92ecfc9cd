"""Feedback uploaded as CSV in the admin goes the API's way: joined to what
each version answered, unknown and rejected rows reported."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from monitoring.models import Feedback
from tests.monitoring.test_feedback import predict, records_row

UPLOAD = "/admin/monitoring/feedback/upload/"


def csv_file(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("labels.csv", text.encode(), content_type="text/csv")


def test_a_csv_of_rows_by_index_is_joined_and_reported(client, staff_client, iris):
    answer = predict(client, "iris", {"data": [records_row(), records_row()]})
    request_id = answer["request_id"]
    text = (
        "request_id,row,label\n"
        f"{request_id},0,setosa\n"
        f"{request_id},1,virginica\n"
        f"{request_id},5,setosa\n"
        "not-a-request,0,setosa\n"
    )
    response = staff_client.post(UPLOAD, {"model": "iris", "file": csv_file(text)})
    assert response.status_code == 200
    page = response.content.decode()
    assert "2 accepted" in page
    assert "not-a-request" in page and "row_out_of_range" in page
    assert dict(Feedback.objects.values_list("row", "label")) == {
        0: "setosa",
        1: "virginica",
    }


def test_a_csv_of_rows_by_id_is_joined(client, staff_client, iris):
    answer = predict(client, "iris", [{"id": "a-1", **records_row()}])
    text = f"request_id,id,label\n{answer['request_id']},a-1,versicolor\n"
    response = staff_client.post(UPLOAD, {"model": "iris", "file": csv_file(text)})
    assert response.status_code == 302
    assert Feedback.objects.get().label == "versicolor"


def test_a_csv_with_another_header_is_refused_and_stores_nothing(staff_client, iris):
    response = staff_client.post(
        UPLOAD, {"model": "iris", "file": csv_file("id,label\nx,setosa\n")}
    )
    assert response.status_code == 200
    assert "request_id,row,label" in response.content.decode()
    assert not Feedback.objects.exists()


def test_the_upload_answers_only_staff(client, django_user_model, iris):
    user = django_user_model.objects.create_user("plain", password="pw")
    client.force_login(user)
    response = client.get(UPLOAD)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
