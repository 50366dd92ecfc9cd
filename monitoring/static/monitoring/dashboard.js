/* ModelHub dashboard: draws the series embedded by monitoring/dashboard.html with Chart.js. */
"use strict";

(function () {
  const source = document.getElementById("dashboard-series");
  const trafficCanvas = document.getElementById("traffic-chart");
  const latencyCanvas = document.getElementById("latency-chart");
  // Error page or empty window: nothing to draw.
  if (!source || !trafficCanvas || !latencyCanvas || typeof Chart === "undefined") {
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
    highlight: color("--secondary", "#417690"),
    p50: "#417690",
    p95: "#d08a1e",
    p99: "#ba2121",
  };

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

  const traffic = [
    {
      type: "bar",
      label: "Successful",
      data: points.map((p) => p.requests - p.errors),
      backgroundColor: palette.ok,
      stack: "all",
    },
    {
      type: "bar",
      label: "Errors",
      data: points.map((p) => p.errors),
      backgroundColor: palette.error,
      stack: "all",
    },
  ];
  if (series.highlight) {
    traffic.push({
      type: "line",
      label: series.highlight.slug + " requests",
      data: series.highlight.requests,
      borderColor: palette.highlight,
      backgroundColor: palette.highlight,
      borderWidth: 2,
      pointRadius: 0,
      pointHoverRadius: 3,
      stack: "highlight",
    });
  }
  new Chart(trafficCanvas, {
    data: { labels: labels, datasets: traffic },
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
  });

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
  });
})();
