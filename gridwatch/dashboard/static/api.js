// The control API from the browser: bearer token, JSON errors turned into readable text.
export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${status}`;
  const fields = body && Array.isArray(body.fields) ? body.fields : [];
  const parts = fields.map((f) => `${f.field}: ${f.message}`);
  if (status === 401) return "The token is not valid (or was revoked).";
  if (status === 403) return `Not allowed for your role: ${detail}`;
  if (status === 429) return "Too many failed attempts from this address; wait a few minutes.";
  return parts.length ? `${detail} (${parts.join("; ")})` : detail;
}

export function makeApi(base, getToken) {
  async function call(method, path, { params, body } = {}) {
    const url = new URL(base + path, location.origin);
    for (const [key, value] of Object.entries(params || {})) {
      for (const v of Array.isArray(value) ? value : [value]) {
        if (v !== undefined && v !== null) url.searchParams.append(key, String(v));
      }
    }
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(url, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, { detail: "The service cannot be reached." });
    }
    let data = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("application/json")) data = await response.json();
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
  return {
    get: (path, params) => call("GET", path, { params }),
    post: (path, body) => call("POST", path, { body }),
    put: (path, body) => call("PUT", path, { body }),
  };
}
