/* The legacy pop-up: open the identity dialog as a modal after sign-in, keep focus inside it,
   give it back on close (Esc included), and move focus into content that htmx swapped in.
   Without JavaScript the dialog is shown in the page (it is rendered open) and its forms post. */
(function () {
  "use strict";
  function focusInto(root) {
    var target = root.querySelector('[aria-invalid="true"]') || root.querySelector("[data-autofocus]") ||
      root.querySelector("h2[tabindex]");
    if (target) { target.focus(); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var dialog = document.getElementById("identity-dialog");
    if (!dialog || typeof dialog.showModal !== "function") { return; }
    var opener = document.getElementById("identity-open");
    dialog.close();
    if (opener) {
      opener.addEventListener("click", function (event) {
        event.preventDefault();
        dialog.showModal();
        focusInto(dialog);
      });
    }
    // Esc fires "cancel" and closes the modal; either way focus returns to the opener.
    dialog.addEventListener("close", function () { if (opener) { opener.focus(); } });
    if (dialog.dataset.autoopen === "1") {
      dialog.showModal();
      focusInto(dialog);
    }
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    var body = document.getElementById("identity-body");
    if (body && (body.contains(event.target) || event.target.contains(body))) { focusInto(body); }
  });
})();
