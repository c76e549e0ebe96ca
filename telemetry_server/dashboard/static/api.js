// The server's API as the dashboard calls it: the API key (kept in localStorage) goes in the Authorization
// header, and an error answer (problem+json) becomes an ApiError carrying its detail.

const KEY_ITEM = "telemetry-server.api-key";

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export function savedKey() {
  return localStorage.getItem(KEY_ITEM) || "";
}

export function saveKey(key) {
  if (key) localStorage.setItem(KEY_ITEM, key);
  else localStorage.removeItem(KEY_ITEM);
}

export async function call(path, { method = "GET", params, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of params || []) url.searchParams.append(name, value);
  const headers = { accept: "application/json" };
  const key = savedKey();
  if (key) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: a proxy's error page, say; the status tells what happened
  }
  if (!response.ok) {
    const detail = (data && (data.detail || data.title)) || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, detail);
  }
  if (data === null && text) throw new ApiError(response.status, "the server's answer is not JSON");
  return data;
}

// The parameters of the listing (and of the stream) that select one metric's series.
export function selectionParams({ name, tags }) {
  const params = [];
  if (name) params.push(["name", name]);
  for (const tag of tags) params.push(["tag", tag]);
  return params;
}

export function describeError(error) {
  if (error instanceof ApiError && error.status === 401) return "The server needs an API key: enter one above.";
  if (error instanceof ApiError && error.status === 403) return `This API key may not do that: ${error.message}`;
  return error.message || String(error);
}
