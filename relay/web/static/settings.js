// Settings and admin pages: a "Copy" button next to a secret shown once (an address, a token).
// Without this file the secret is still on the page to select and copy by hand; the button
// only appears when it can work.
"use strict";

(function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll("button.copy[data-copy]").forEach((button) => {
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const label = button.textContent;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = button.dataset.copied || label;
      } catch (err) {
        // Refused (no permission): select the text, so Ctrl+C or a long press copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    });
  });
})();
