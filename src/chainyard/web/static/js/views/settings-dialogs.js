// Changing a chainlet's environment settings: its instance type (a new deployment, promoted) and
// its autoscaling (applied to the running deployment). Each asks for the new value, then says
// what will happen and asks again before anything is sent.

import { api } from "../api.js";
import { confirmDialog, openDialog } from "../dialogs.js";
import { h } from "../dom.js";

export function describeType(t) {
  const cpu = +(t.millicpu_limit / 1000).toFixed(2);
  const memory = t.memory_limit_mib >= 1024 ? `${+(t.memory_limit_mib / 1024).toFixed(1)} GiB` : `${t.memory_limit_mib} MiB`;
  const gpu = t.gpu_count ? `, ${t.gpu_count}× ${t.gpu_type}` : "";
  return `${t.id} — ${cpu} vCPU, ${memory}${gpu}`;
}

const CLEANUP = {
  KEEP: "keeps running",
  SCALE_TO_ZERO: "is scaled to zero",
  DEACTIVATE: "is deactivated",
};

// Resolves with the API's answer, or null when the user backed out.
export async function changeInstanceType({ chainId, env, setting, types }) {
  const name = setting.chainlet_name;
  const from = setting.instance_type.id;
  const select = h(
    "select",
    { name: "instance_type_id", "data-testid": "instance-type-select" },
    types.map((t) => h("option", { value: t.id, selected: t.id === from }, describeType(t))),
  );
  const chosen = await openDialog({
    title: `Instance type of ${name}`,
    body: [
      h("p", { class: "muted" }, `In environment ${env.name}. Now: ${from}.`),
      h("label", { class: "field" }, h("span", {}, "Instance type"), select),
    ],
    okLabel: "Continue",
    testid: "instance-type-dialog",
    onSubmit: (form) => form.get("instance_type_id"),
  });
  if (!chosen || chosen === from) return chosen === from ? { unchanged: true } : null;

  const cleanup = CLEANUP[env.promotion_settings?.promotion_cleanup_strategy] || CLEANUP.SCALE_TO_ZERO;
  const ok = await confirmDialog({
    title: "Create a new deployment?",
    message: [
      h("p", {}, `${name} moves from ${from} to ${chosen}.`),
      h(
        "p",
        { "data-testid": "confirm-message" },
        env.current_deployment
          ? `A new deployment will be created and promoted into ${env.name}. ` +
              `The current deployment keeps serving until the new one is ready; then it ${cleanup}.`
          : `The setting is stored; ${env.name} has no deployment yet, so nothing is deployed now.`,
      ),
    ],
    okLabel: env.current_deployment ? "Create deployment and promote" : "Save",
    testid: "confirm-instance-type",
  });
  if (!ok) return null;
  return api.updateInstanceTypes(chainId, env.name, [{ chainlet_name: name, instance_type_id: chosen }]);
}

const AUTOSCALING_FIELDS = [
  ["min_replica", "Min replicas"],
  ["max_replica", "Max replicas"],
  ["concurrency_target", "Concurrent requests per replica"],
  ["target_utilization_percentage", "Target utilization (%)"],
  ["autoscaling_window", "Autoscaling window (s)"],
  ["scale_down_delay", "Scale-down delay (s)"],
];

export async function changeAutoscaling({ chainId, env, setting }) {
  const name = setting.chainlet_name;
  const current = setting.autoscaling_settings || {};
  const inputs = AUTOSCALING_FIELDS.map(([field, label]) =>
    h(
      "label",
      { class: "field" },
      h("span", {}, label),
      h("input", {
        type: "number",
        name: field,
        min: 0,
        step: 1,
        value: current[field] ?? "",
        "data-testid": `autoscaling-${field}`,
      }),
    ),
  );
  const changes = await openDialog({
    title: `Autoscaling of ${name}`,
    body: [h("p", { class: "muted" }, `In environment ${env.name}.`), h("div", { class: "form-grid" }, inputs)],
    okLabel: "Continue",
    testid: "autoscaling-dialog",
    onSubmit: (form) => {
      const sent = {};
      for (const [field] of AUTOSCALING_FIELDS) {
        const raw = String(form.get(field) ?? "").trim();
        if (raw === "") continue;
        const value = Number(raw);
        if (!Number.isInteger(value)) throw new Error(`${field} must be a whole number`);
        if (value !== current[field]) sent[field] = value;
      }
      return sent;
    },
  });
  if (!changes) return null;
  if (!Object.keys(changes).length) return { status: "UNCHANGED", message: "nothing changed" };
  const listed = Object.entries(changes).map(([k, v]) => `${k} ${current[k] ?? "—"} → ${v}`);
  const ok = await confirmDialog({
    title: "Change autoscaling?",
    message: [
      h("p", {}, `${name}: ${listed.join(", ")}.`),
      h(
        "p",
        {},
        "The running deployment follows at once; no new deployment is created. " +
          "A deployment being promoted gets the settings when it is promoted.",
      ),
    ],
    okLabel: "Apply",
    testid: "confirm-autoscaling",
  });
  if (!ok) return null;
  return api.updateAutoscaling(chainId, env.name, [{ chainlet_name: name, autoscaling_settings: changes }]);
}
