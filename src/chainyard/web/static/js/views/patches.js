// A development deployment's live patches (GET .../development/patches), newest first. Paths and
// messages are the user's data: like everything else they go into the page as text nodes (dom.js).

import { api } from "../api.js";
import { h, notice, statusBadge, table, when } from "../dom.js";

export const PATCHES_SHOWN = 50;
const PATHS_SHOWN = 3;

function paths(list) {
  if (!list.length) return h("span", { class: "muted" }, "—");
  const shown = list.slice(0, PATHS_SHOWN);
  const more = list.length - shown.length;
  // The whole list in the tooltip; the cell stays short.
  return h(
    "span",
    { class: "paths", title: list.join("\n") },
    shown.map((p, i) => [i ? ", " : null, h("code", {}, p)]),
    more > 0 ? h("span", { class: "muted" }, ` +${more} more`) : null,
  );
}

function duration(ms) {
  if (ms === null || ms === undefined) return h("span", { class: "muted" }, "…");
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`;
}

const COLUMNS = [["Revision", "num"], "Status", "Kind", "Chainlets", "Changed", "Deleted", ["Duration", "num"], "Created"];

function rows(patches) {
  const out = [];
  for (const p of patches) {
    out.push(
      h(
        "tr",
        { "data-testid": "patch-row", "data-revision": p.revision, "data-status": p.status, class: p.message ? "has-message" : null },
        h("td", { class: "num" }, String(p.revision)),
        h("td", {}, statusBadge(p.status, "patch-status")),
        h("td", {}, p.kind),
        h("td", {}, p.chainlets.length ? p.chainlets.join(", ") : h("span", { class: "muted" }, "none")),
        h("td", { "data-testid": "patch-changed" }, paths(p.changed_paths)),
        h("td", { "data-testid": "patch-deleted" }, paths(p.deleted_paths)),
        h("td", { class: "num", "data-testid": "patch-duration" }, duration(p.duration_ms)),
        h("td", {}, when(p.created_at)),
      ),
    );
    // Why it failed (an import error, "superseded by revision N") or was skipped, under its row.
    if (p.message) {
      out.push(
        h(
          "tr",
          { class: `patch-message ${p.status === "FAILED" ? "bad" : ""}`, "data-revision": p.revision },
          h("td", {}),
          h("td", { colspan: COLUMNS.length - 1 }, h("pre", { "data-testid": "patch-message" }, p.message)),
        ),
      );
    }
  }
  return out;
}

// The history of `deploymentId`, as elements to show. The API lists the chain's current
// development deployment's patches: while a push replaces this one (a 404 until the new one
// exists), they are another deployment's and not shown.
export async function patchHistory(chainId, deploymentId) {
  let patches;
  try {
    patches = (await api.patches(chainId, { limit: PATCHES_SHOWN })).patches;
  } catch (err) {
    if (err.status !== 404) return [notice("error", err.message)];
    patches = [];
  }
  patches = patches.filter((p) => p.chain_deployment_id === deploymentId);
  return [
    table(COLUMNS, rows(patches), {
      empty: ["No patches yet: ", h("code", {}, "chainyard push --watch"), " patches this deployment on every save."],
      testid: "patches",
    }),
    patches.length === PATCHES_SHOWN ? h("p", { class: "muted" }, `The ${PATCHES_SHOWN} newest patches.`) : null,
  ];
}
