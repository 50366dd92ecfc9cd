// The version upload page: the preflight takes seconds, so say it is working
// and send the form once, however often the button is pressed.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const button = form.querySelector("input[type=submit]");
  const progress = document.getElementById("upload-progress");
  let sent = false;
  form.addEventListener("submit", (event) => {
    if (sent) {
      event.preventDefault();
      return;
    }
    sent = true;
    // Disabled after this event, so the submission already under way is kept.
    setTimeout(() => { button.disabled = true; }, 0);
    progress.hidden = false;
  });
  // Back from the next page (the browser's page cache): the form is usable again.
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    sent = false;
    button.disabled = false;
    progress.hidden = true;
  });
});
