import { api } from "../api.js";
import { h, notice, replace, shortId, table, when } from "../dom.js";

const PAGE = 100;

export async function chainsView(ctx, main) {
  ctx.crumbs(["Chains"]);
  const list = h("div", {});
  const more = h("div", { class: "more" });
  const chains = [];
  replace(
    main,
    h("h1", {}, "Chains"),
    h("p", { class: "subtitle" }, "Every chain of the workspace this key belongs to."),
    list,
    more,
  );

  async function load(after) {
    const page = await api.chains({ limit: PAGE, after });
    if (!ctx.alive) return;
    chains.push(...page.chains);
    const rows = chains.map((c) =>
      h(
        "tr",
        { class: "clickable", "data-testid": "chain-row", "data-chain-id": c.id, onclick: () => (location.hash = `#/chains/${c.id}`) },
        h("td", {}, h("a", { href: `#/chains/${c.id}`, "data-testid": "chain-link" }, c.name)),
        h("td", {}, shortId(c.id)),
        h("td", { class: "num" }, String(c.deployments_count)),
        h("td", {}, when(c.created_at)),
      ),
    );
    replace(
      list,
      table(["Name", "Id", ["Deployments", "num"], "Created"], rows, {
        empty: "No chains yet. Push one with `chainyard push path/to/chain.py`.",
        testid: "chains",
      }),
    );
    replace(
      more,
      page.chains.length === PAGE
        ? h("button", { type: "button", class: "ghost", onclick: () => load(chains[chains.length - 1].id).catch(show) }, "Load more")
        : null,
    );
  }

  function show(err) {
    replace(more, notice("error", err.message));
  }

  await load();
}
