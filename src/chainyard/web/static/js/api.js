// The REST API, called with the signed-in key. Paths are relative to the page, so the dashboard
// also works behind a proxy that serves chainyard under a path prefix.

const STORAGE_KEY = "chainyard.apiKey";

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// sessionStorage: the key lives as long as the tab, and is not shared with other tabs or written
// to disk as a cookie would be.
export const session = {
  get key() {
    return sessionStorage.getItem(STORAGE_KEY);
  },
  get prefix() {
    const key = this.key;
    return key ? key.split(".")[0] : "";
  },
  signIn(key) {
    sessionStorage.setItem(STORAGE_KEY, key);
  },
  signOut() {
    sessionStorage.removeItem(STORAGE_KEY);
  },
};

export async function call(path, { method = "GET", body, key, query } = {}) {
  const headers = { Authorization: `Bearer ${key ?? session.key ?? ""}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let url = path.replace(/^\//, "");
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value === undefined || value === null || value === "") continue;
      for (const item of Array.isArray(value) ? value : [value]) params.append(name, String(item));
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message})`, "NETWORK");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && (data.error || data.detail)) || `HTTP ${response.status}`;
    const error = new ApiError(response.status, typeof message === "string" ? message : JSON.stringify(message), data && data.code);
    // A key that stops working (deleted, rotated) ends the session, except while signing in.
    if (response.status === 401 && key === undefined) {
      window.dispatchEvent(new CustomEvent("chainyard:unauthorized", { detail: error.message }));
    }
    throw error;
  }
  return data;
}

const seg = encodeURIComponent;

export const api = {
  chains: (query) => call("/v1/chains", { query }),
  chain: (id) => call(`/v1/chains/${seg(id)}`),
  deployments: (id, query) => call(`/v1/chains/${seg(id)}/deployments`, { query }),
  deployment: (id, dep) => call(`/v1/chains/${seg(id)}/deployments/${seg(dep)}`),
  asyncQueue: (id) => call(`/v1/chains/${seg(id)}/async_queue`),
  environments: (id) => call(`/v1/chains/${seg(id)}/environments`),
  environment: (id, env) => call(`/v1/chains/${seg(id)}/environments/${seg(env)}`),
  live: (id, env, windowSeconds) =>
    call(`/v1/chains/${seg(id)}/environments/${seg(env)}/live`, { query: { window_seconds: windowSeconds } }),
  instanceTypes: () => call("/v1/instance_types"),
  updateInstanceTypes: (id, env, updates) =>
    call(`/v1/chains/${seg(id)}/environments/${seg(env)}/chainlet_settings/instance_types/update`, {
      method: "POST",
      body: { updates },
    }),
  updateAutoscaling: (id, env, updates) =>
    call(`/v1/chains/${seg(id)}/environments/${seg(env)}/chainlet_settings/autoscaling_settings`, {
      method: "PATCH",
      body: { updates },
    }),
  patches: (id, query) => call(`/v1/chains/${seg(id)}/development/patches`, { query }),
  logs: (id, dep, chainlet, query) =>
    call(`/v1/chains/${seg(id)}/deployments/${seg(dep)}/chainlets/${seg(chainlet)}/logs`, { query }),
};
