// Modal dialogs on the native <dialog> element: focus trapping, Escape and the backdrop come with
// it. Each call builds a fresh dialog and removes it when closed, so polls that redraw the page
// underneath never disturb an open one.

import { h } from "./dom.js";

// Shows a dialog; resolves with what `onSubmit` returned, or null when cancelled. `onSubmit` may
// throw to keep the dialog open with the message shown.
export function openDialog({ title, body, okLabel = "OK", cancelLabel = "Cancel", testid, onSubmit }) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert", hidden: true });
    const ok = h("button", { type: "submit", "data-testid": "dialog-ok" }, okLabel);
    const cancel = h("button", { type: "button", class: "ghost", "data-testid": "dialog-cancel" }, cancelLabel);
    const form = h("form", {}, h("h2", {}, title), body, error, h("div", { class: "buttons" }, cancel, ok));
    const dialog = h("dialog", { "data-testid": testid, "aria-label": title }, form);
    let result = null;

    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      ok.disabled = true;
      error.hidden = true;
      try {
        result = onSubmit ? await onSubmit(new FormData(form)) : true;
        dialog.close();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
      } finally {
        ok.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

export function confirmDialog({ title, message, okLabel = "Confirm", testid = "confirm-dialog" }) {
  return openDialog({
    title,
    body: h("div", { class: "warning" }, ...(Array.isArray(message) ? message : [message])),
    okLabel,
    testid,
  }).then((value) => value === true);
}
