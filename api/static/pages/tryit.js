// Try it: posts the form's JSON to the model's own endpoint with the admin
// session (and its CSRF token), then shows the status, headers and body.
"use strict";

async function sendTry(form) {
  const result = form.querySelector(".pages-try-result");
  const status = form.querySelector(".pages-try-status");
  const headers = form.querySelector(".pages-try-headers");
  const body = form.querySelector(".pages-try-response");
  const button = form.querySelector("button[type=submit]");
  const url = form.dataset.url + (form.elements.proba.checked ? "?proba=1" : "");
  button.disabled = true;
  status.textContent = "sending…";
  headers.textContent = "";
  body.textContent = "";
  result.hidden = false;
  try {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        "X-CSRFToken": form.elements.csrfmiddlewaretoken.value,
      },
      body: form.elements.body.value,
    });
    status.textContent = `${response.status} ${response.statusText}`;
    status.dataset.status = String(response.status);
    headers.textContent = Array.from(response.headers.entries())
      .map(([name, value]) => `${name}: ${value}`)
      .join("\n");
    const text = await response.text();
    try {
      body.textContent = JSON.stringify(JSON.parse(text), null, 2);
    } catch (notJson) {
      body.textContent = text;
    }
  } catch (error) {
    status.textContent = `The request failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form.pages-try-it")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sendTry(form);
    });
  }
});
