// The live stream: Server-Sent Events from GET /metrics/stream. EventSource cannot send headers, so the API key
// buys a short-lived token (POST /metrics/stream/token) that goes in the URL. The browser reconnects by itself
// after a dropped connection (sending Last-Event-ID); once it gives up (the token has expired, the server
// refused), a fresh token opens a new stream and `onResync` asks the caller to fill what it may have missed.

import { ApiError, call, selectionParams } from "./api.js";

const MAX_BACKOFF_MS = 30000;
const RESYNC_EVERY_MS = 3000;

export class LiveStream {
  constructor({ onPoint, onState, onResync }) {
    this.onPoint = onPoint;
    this.onState = onState;
    this.onResync = onResync;
    this.source = null;
    this.selection = null;
    this.generation = 0; // a newer `follow` makes older callbacks stale
    this.backoffMs = 1000;
    this.retry = null;
    this.resyncing = null;
  }

  follow(selection) {
    this.close();
    this.selection = selection;
    this.backoffMs = 1000;
    this.open(++this.generation, false);
  }

  close() {
    this.generation++;
    clearTimeout(this.retry);
    if (this.source) this.source.close();
    this.source = null;
  }

  async open(generation, resync) {
    this.onState("connecting", "connecting…");
    let token;
    try {
      token = (await call("/metrics/stream/token", { method: "POST" })).token;
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof ApiError && error.status === 404) {
        this.onState("error", "no live stream on this server");
        return; // nothing to retry: this server has no streams
      }
      this.onState("error", error.status === 401 ? "needs an API key" : "stream unavailable");
      this.scheduleRetry(generation);
      return;
    }
    if (generation !== this.generation) return;
    const url = new URL("/metrics/stream", location.origin);
    for (const [name, value] of [...selectionParams(this.selection), ["token", token]]) {
      url.searchParams.append(name, value);
    }
    const source = (this.source = new EventSource(url));
    source.addEventListener("open", () => {
      if (generation !== this.generation) return;
      this.backoffMs = 1000;
      this.onState("open", "live");
      if (resync) this.onResync();
      resync = false;
    });
    source.addEventListener("point", (event) => {
      if (generation === this.generation) this.onPoint(JSON.parse(event.data));
    });
    for (const type of ["gap", "lagged"]) {
      // Points were skipped: the listing has them (read again at most every few seconds, however often told).
      source.addEventListener(type, () => generation === this.generation && this.resyncSoon());
    }
    source.addEventListener("bye", () => generation === this.generation && this.onState("connecting", "server restarting…"));
    source.addEventListener("error", () => {
      if (generation !== this.generation) return;
      if (source.readyState === EventSource.CLOSED) {
        this.onState("error", "stream closed; reconnecting");
        this.scheduleRetry(generation);
      } else {
        this.onState("connecting", "reconnecting…"); // resumes after the last event id it saw: nothing lost
      }
    });
  }

  resyncSoon() {
    if (this.resyncing) return;
    this.resyncing = setTimeout(() => {
      this.resyncing = null;
      this.onResync();
    }, RESYNC_EVERY_MS);
  }

  scheduleRetry(generation) {
    if (this.source) this.source.close();
    this.source = null;
    clearTimeout(this.retry);
    this.retry = setTimeout(() => generation === this.generation && this.open(generation, true), this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
  }
}
