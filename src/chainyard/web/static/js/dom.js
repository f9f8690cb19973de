// A tiny element builder. Text always goes in as text nodes, never as markup, so names, log lines
// and error messages from the server cannot inject anything into the page.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "dataset") {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (name === "value" && "value" in el) {
      el.value = value;
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// Deployment and chainlet statuses, and a live patch's (SUCCEEDED, APPLYING, FAILED; SKIPPED is neutral).
const OK = new Set(["ACTIVE", "SUCCEEDED"]);
const BUSY = new Set(["BUILDING", "DEPLOYING", "LOADING_MODEL", "UPDATING", "WAKING_UP", "DEACTIVATING", "APPLYING"]);
const BAD = new Set(["BUILD_FAILED", "DEPLOY_FAILED", "FAILED", "UNHEALTHY", "BUILD_STOPPED"]);

export function statusBadge(status, testid) {
  const tone = OK.has(status) ? "ok" : BUSY.has(status) ? "busy" : BAD.has(status) ? "bad" : "";
  return h("span", { class: `badge ${tone}`, "data-testid": testid, "data-status": status }, status);
}

// The chain's development deployment (is_development): in no environment, live-patched.
export function developmentBadge() {
  return h("span", { class: "badge dev", "data-testid": "development-badge", title: "development deployment" }, "development");
}

export function isFailure(status) {
  return BAD.has(status) && status !== "UNHEALTHY";
}

export function when(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function shortId(id) {
  return h("code", { title: id }, id);
}

export function table(headers, rows, { empty = "Nothing here yet.", testid } = {}) {
  if (!rows.length) return h("p", { class: "empty", "data-testid": testid }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "data-testid": testid },
      // A header is a label, or [label, class] (e.g. "num" for a right-aligned figure).
      h("thead", {}, h("tr", {}, headers.map((c) => (Array.isArray(c) ? h("th", { class: c[1] }, c[0]) : h("th", {}, c))))),
      h("tbody", {}, rows),
    ),
  );
}

export function notice(kind, ...children) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}
