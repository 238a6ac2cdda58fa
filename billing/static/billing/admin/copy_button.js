// A "Copy" button for a read-only input (the webhook signing key): <button data-copy-target="input-id" hidden>.
// Shown only where the script runs; copies with the Clipboard API, or selects the text to copy by hand.
"use strict";
document.querySelectorAll("button[data-copy-target]").forEach((button) => {
  const input = document.getElementById(button.dataset.copyTarget);
  if (!input) return;
  const label = button.textContent;
  button.hidden = false;
  button.addEventListener("click", () => {
    input.select();
    const done = () => {
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, () => {});
    } else if (document.execCommand("copy")) {
      done();
    }
  });
});
