import { call, session } from "../api.js";
import { h, notice, replace } from "../dom.js";

export function signInView(main, message, done) {
  const input = h("input", {
    type: "password",
    name: "key",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "prefix.secret",
    required: true,
    "aria-label": "API key",
    "data-testid": "api-key",
  });
  const error = h("div", { hidden: true, "data-testid": "signin-error" });
  const button = h("button", { type: "submit", "data-testid": "sign-in" }, "Sign in");
  const form = h(
    "form",
    { class: "panel signin" },
    h("h1", {}, "Sign in"),
    h(
      "p",
      {},
      "Use an API key of your workspace. On a fresh server the first key is in ",
      h("code", {}, ".chainyard/initial-api-key"),
      ". The key stays in this tab only and is sent to this server, nowhere else.",
    ),
    message ? notice("", message) : null,
    error,
    h("label", { class: "field" }, h("span", {}, "API key"), input),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    button.disabled = true;
    error.hidden = true;
    try {
      // Any management call proves the key; one chain is enough.
      await call("/v1/chains", { key, query: { limit: 1 } });
      session.signIn(key);
      done();
    } catch (err) {
      const text =
        err.status === 401
          ? "That key was not accepted."
          : err.status === 403
            ? "This key may not manage the workspace (an invoke-only or metrics key?)."
            : err.message;
      replace(error, notice("error", text));
      error.hidden = false;
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, form);
  input.focus();
}
