import { api } from "../api.js";
import { h, notice, replace } from "../dom.js";

const LIMIT = 500;

function lineTime(ns) {
  // Nanoseconds exceed a double's exact range; the division keeps milliseconds exact.
  const ms = Number(BigInt(ns) / 1000000n);
  return new Date(ms).toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    fractionalSecondDigits: 3,
    hour12: false,
  });
}

export async function logsView(ctx, main, chainId, deploymentId, chainletId) {
  const [chain, deployment] = await Promise.all([api.chain(chainId), api.deployment(chainId, deploymentId)]);
  if (!ctx.alive) return;
  const chainlet = deployment.chainlets.find((c) => c.id === chainletId);
  const name = chainlet ? chainlet.name : chainletId;
  ctx.crumbs(
    ["Chains", "#/"],
    [chain.name, `#/chains/${chainId}`],
    [`deployment ${deploymentId}`, `#/chains/${chainId}/deployments/${deploymentId}`],
    [`${name} logs`],
  );

  const level = h(
    "select",
    { "aria-label": "Lowest level", "data-testid": "log-level" },
    ["", "DEBUG", "INFO", "WARNING", "ERROR"].map((l) => h("option", { value: l }, l || "all levels")),
  );
  const search = h("input", { type: "search", placeholder: "regex filter", "aria-label": "Filter", "data-testid": "log-search" });
  const follow = h("input", { type: "checkbox", checked: true, "data-testid": "log-follow" });
  const status = h("div", {});
  const box = h("div", { class: "panel logs", "data-testid": "logs" });
  replace(
    main,
    h("h1", {}, `${name} logs`),
    h("p", { class: "subtitle" }, "Build output and replica output, newest at the bottom (last 30 minutes, up to 500 lines)."),
    h("div", { class: "toolbar" }, level, search, h("span", { class: "spacer" }), h("label", { class: "inline" }, follow, "follow")),
    status,
    box,
  );

  async function load() {
    try {
      const { logs } = await api.logs(chainId, deploymentId, chainletId, {
        direction: "desc",
        limit: LIMIT,
        min_level: level.value,
        search_pattern: search.value,
      });
      if (!ctx.alive) return;
      replace(status);
      const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
      const rows = logs
        .slice()
        .reverse()
        .map((l) =>
          h(
            "tr",
            { class: l.level || "" },
            h("td", { class: "time" }, lineTime(l.timestamp)),
            h("td", { class: "level" }, l.level || ""),
            h("td", { class: "replica" }, l.replica || ""),
            h("td", { class: "msg" }, l.message),
          ),
        );
      replace(box, rows.length ? h("table", {}, h("tbody", {}, rows)) : h("p", { class: "empty" }, "No lines."));
      if (atBottom || box.dataset.loaded !== "1") box.scrollTop = box.scrollHeight;
      box.dataset.loaded = "1";
    } catch (err) {
      if (ctx.alive) replace(status, notice("error", err.message));
    }
  }

  level.addEventListener("change", load);
  let typing;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(load, 300);
  });
  await ctx.every(2000, async () => {
    if (follow.checked || box.dataset.loaded !== "1") await load();
  });
}
