// Boot and routing. Routes live in the URL's hash (#/chains/ID/...), so the server serves one page
// at `/` and a reload or a shared link lands on the same view.

import { session } from "./api.js";
import { h, notice, replace } from "./dom.js";
import { chainsView } from "./views/chains.js";
import { chainView } from "./views/chain.js";
import { environmentView } from "./views/environment.js";
import { deploymentView } from "./views/deployment.js";
import { logsView } from "./views/logs.js";
import { signInView } from "./views/signin.js";

const ROUTES = [
  [/^\/?$/, chainsView],
  [/^\/chains\/([^/]+)$/, chainView],
  [/^\/chains\/([^/]+)\/environments\/([^/]+)$/, environmentView],
  [/^\/chains\/([^/]+)\/deployments\/([^/]+)$/, deploymentView],
  [/^\/chains\/([^/]+)\/deployments\/([^/]+)\/chainlets\/([^/]+)\/logs$/, logsView],
];

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const who = document.getElementById("who");
let current = null;

// What a view gets: where to draw, and timers that stop when the user navigates away.
class ViewContext {
  constructor() {
    this.timers = [];
    this.alive = true;
  }

  // Runs `task` now and then every `ms`, never two at once; stops when the view is left.
  every(ms, task) {
    let running = false;
    const tick = async () => {
      if (running || !this.alive) return;
      running = true;
      try {
        await task();
      } finally {
        running = false;
      }
    };
    this.timers.push(setInterval(tick, ms));
    return tick();
  }

  crumbs(...items) {
    const parts = [];
    for (const [label, href] of items) {
      if (parts.length) parts.push(h("span", { class: "sep" }, "/"));
      parts.push(href ? h("a", { href }, label) : h("span", {}, label));
    }
    replace(crumbs, parts);
  }

  dispose() {
    this.alive = false;
    for (const timer of this.timers) clearInterval(timer);
  }
}

function showWho() {
  who.hidden = !session.key;
  document.getElementById("who-key").textContent = session.key ? `key ${session.prefix}` : "";
}

async function route(message) {
  if (current) current.dispose();
  const ctx = (current = new ViewContext());
  showWho();
  replace(crumbs);
  if (!session.key) {
    signInView(main, message, () => route());
    return;
  }
  const path = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  for (const [pattern, view] of ROUTES) {
    const match = path.match(pattern);
    if (match) {
      replace(main);
      try {
        await view(ctx, main, ...match.slice(1));
      } catch (err) {
        if (ctx.alive) replace(main, notice("error", err.message));
      }
      return;
    }
  }
  replace(main, notice("error", "No such page. ", h("a", { href: "#/" }, "Back to the chains")));
}

function signOut(message) {
  session.signOut();
  // The hash is kept: signing in again returns to the same view.
  route(message);
}

document.getElementById("sign-out").addEventListener("click", () => signOut("Signed out."));
window.addEventListener("chainyard:unauthorized", (event) => {
  signOut(`Your key was not accepted any more (${event.detail}). Sign in again.`);
});
window.addEventListener("hashchange", () => route());
route();
