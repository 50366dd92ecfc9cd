/* ModelHub dashboard: draws the series embedded by monitoring/dashboard.html with
 * Chart.js, submits the model and version pickers when they change, and, while
 * auto-refresh is checked, fetches the page again every few seconds and swaps
 * its content in (no request at all while unchecked). */
"use strict";

(function () {
  const charts = [];

  function draw() {
    const source = document.getElementById("dashboard-series");
    // Error page or empty window: nothing to draw.
    if (!source || typeof Chart === "undefined") {
      return;
    }
    const series = JSON.parse(source.textContent);
    const points = series.points;

    const css = getComputedStyle(document.documentElement);
    const color = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    const text = color("--body-quiet-color", "#666");
    const grid = color("--hairline-color", "#e8e8e8");
    const palette = {
      ok: color("--primary", "#79aec8"),
      error: color("--error-fg", "#ba2121"),
      p50: "#417690",
      p95: "#d08a1e",
      p99: "#ba2121",
    };
    const versionColors = ["#417690", "#d08a1e", "#5a9e4b", "#8e5aa8", "#ba2121", "#2f8f8f"];

    // Starts are ISO strings already in the site's time zone: show their wall
    // clock as is, so the axis agrees with the tables.
    const multiDay = series.step_seconds >= 3600;
    const label = (iso) => (multiDay ? iso.slice(5, 10) + " " : "") + iso.slice(11, 16);
    const labels = points.map((p) => label(p.start));
    const titles = points.map((p) => p.start.slice(0, 10) + " " + p.start.slice(11, 16));

    Chart.defaults.color = text;
    Chart.defaults.borderColor = grid;
    Chart.defaults.font.family = css.getPropertyValue("--font-family-primary") || undefined;

    const common = {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      plugins: {
        legend: { position: "bottom", labels: { boxWidth: 12, padding: 16 } },
        tooltip: { callbacks: { title: (items) => titles[items[0].dataIndex] } },
      },
      scales: {
        x: { grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } },
      },
    };

    const trafficCanvas = document.getElementById("traffic-chart");
    if (trafficCanvas) {
      // The series is the chosen model's (or version's) own: its bars say so.
      const of = series.highlight ? series.focus + ": " : "";
      charts.push(
        new Chart(trafficCanvas, {
          data: {
            labels: labels,
            datasets: [
              {
                type: "bar",
                label: of + "successful",
                data: points.map((p) => p.requests - p.errors),
                backgroundColor: palette.ok,
                stack: "all",
              },
              {
                type: "bar",
                label: of + "errors",
                data: points.map((p) => p.errors),
                backgroundColor: palette.error,
                stack: "all",
              },
            ],
          },
          options: {
            ...common,
            scales: {
              x: { ...common.scales.x, stacked: true },
              y: {
                stacked: true,
                beginAtZero: true,
                ticks: { precision: 0 },
                title: { display: true, text: "requests" },
              },
            },
          },
        })
      );
    }

    const latencyCanvas = document.getElementById("latency-chart");
    if (latencyCanvas) {
      const percentile = (key, name, dashed) => ({
        label: name,
        data: points.map((p) => p[key]),
        borderColor: palette[name],
        backgroundColor: palette[name],
        borderWidth: 2,
        borderDash: dashed ? [6, 4] : [],
        pointRadius: 2.5,
        spanGaps: true,
        tension: 0.2,
      });
      charts.push(
        new Chart(latencyCanvas, {
          type: "line",
          data: {
            labels: labels,
            // Chart.js paints the first dataset on top: p99 (dashed) stays visible
            // where few requests make it equal to p95; the legend reads upwards.
            datasets: [
              percentile("p99_ms", "p99", true),
              percentile("p95_ms", "p95"),
              percentile("p50_ms", "p50"),
            ],
          },
          options: {
            ...common,
            plugins: {
              ...common.plugins,
              legend: {
                ...common.plugins.legend,
                reverse: true,
                labels: { usePointStyle: true, pointStyle: "line", padding: 16 },
              },
            },
            scales: {
              ...common.scales,
              y: { beginAtZero: true, title: { display: true, text: "ms" } },
            },
          },
        })
      );
    }

    const qualityCanvas = document.getElementById("quality-chart");
    if (qualityCanvas && series.quality) {
      // Accuracy on a 0-1 axis, a regressor's MAE on its own (a model whose
      // versions changed kind gets both).
      const axes = { accuracy: "y", mae: "mae" };
      const used = new Set(series.quality.map((q) => q.metric));
      const scales = { ...common.scales };
      if (used.has("accuracy")) {
        scales.y = { min: 0, max: 1, title: { display: true, text: "accuracy" } };
      }
      if (used.has("mae")) {
        scales.mae = {
          position: used.has("accuracy") ? "right" : "left",
          beginAtZero: true,
          title: { display: true, text: "MAE" },
        };
      }
      charts.push(
        new Chart(qualityCanvas, {
          type: "line",
          data: {
            labels: labels,
            datasets: series.quality.map((q, i) => ({
              label: "v" + q.version + " " + (q.metric === "mae" ? "MAE" : "accuracy"),
              data: q.values,
              yAxisID: axes[q.metric],
              borderColor: versionColors[i % versionColors.length],
              backgroundColor: versionColors[i % versionColors.length],
              borderWidth: 2,
              pointRadius: 3,
              spanGaps: true,
            })),
          },
          options: {
            ...common,
            plugins: {
              ...common.plugins,
              tooltip: {
                callbacks: {
                  title: (items) => titles[items[0].dataIndex],
                  afterLabel: (item) =>
                    series.quality[item.datasetIndex].labelled[item.dataIndex] +
                    " labelled rows",
                },
              },
            },
            scales: scales,
          },
        })
      );
    }

    const driftCanvas = document.getElementById("drift-chart");
    const driftData = document.getElementById("drift-series");
    if (driftCanvas && driftData) {
      const drift = JSON.parse(driftData.textContent);
      const lines = [];
      drift.versions.forEach((v) =>
        v.features.forEach((f) => lines.push({ label: "v" + v.version + " " + f.name, data: f.psi }))
      );
      charts.push(
        new Chart(driftCanvas, {
          type: "line",
          data: {
            labels: drift.starts.map((s) => s.slice(5, 16).replace("T", " ")),
            datasets: lines.map((line, i) => ({
              label: line.label,
              data: line.data,
              borderColor: versionColors[i % versionColors.length],
              backgroundColor: versionColors[i % versionColors.length],
              borderWidth: 2,
              pointRadius: 3,
              spanGaps: true,
            })),
          },
          options: {
            ...common,
            scales: {
              ...common.scales,
              y: { beginAtZero: true, title: { display: true, text: "PSI" } },
            },
          },
        })
      );
    }
  }

  // --- auto-refresh ---------------------------------------------------------

  let timer = null;

  function refreshBox() {
    return document.getElementById("auto-refresh");
  }

  function editing() {
    // A refresh would wipe what the user is typing into the range or picking.
    const active = document.activeElement;
    return Boolean(active && active.closest && active.closest("#content-main form"));
  }

  function schedule() {
    const box = refreshBox();
    if (!box || !box.checked) {
      return;
    }
    const seconds = Number(box.dataset.seconds) || 10;
    timer = setTimeout(refresh, seconds * 1000);
  }

  async function refresh() {
    timer = null;
    try {
      if (editing()) {
        return;
      }
      const response = await fetch(location.href, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      if (response.redirected && response.url.includes("/admin/login/")) {
        location.reload(); // the session ended: show the login page
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("content-main");
      const current = document.getElementById("content-main");
      if (!fresh || !current) {
        return;
      }
      charts.splice(0).forEach((chart) => chart.destroy());
      current.replaceWith(document.adoptNode(fresh));
      draw();
    } catch (error) {
      // Offline or a server restarting: keep what is shown, try again next time.
    } finally {
      schedule();
    }
  }

  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.id === "auto-refresh") {
      // The choice lives in the URL (refresh=1): every link and reload keeps it.
      location.assign(target.dataset.href);
    } else if (target.id === "dash-model" || target.id === "dash-version") {
      const version = document.getElementById("dash-version");
      // Another model's version numbers mean nothing here.
      if (version && target.id === "dash-model") {
        version.value = "";
      }
      // A disabled field is not sent: "all" leaves no empty parameter behind.
      for (const field of [target.form.elements.model, version]) {
        if (field && !field.value) {
          field.disabled = true;
        }
      }
      target.form.submit();
    }
  });

  draw();
  schedule();
})();
