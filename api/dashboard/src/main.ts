// A police force's live alert dashboard: its open alerts on a map and in a list, updated in
// place from the control plane's live feed (Server-Sent Events), with the lifecycle actions.
import { fetchEventSource } from "@microsoft/fetch-event-source";
import { type GeoJSONSource, Map as MapLibre, type StyleSpecification } from "maplibre-gl";
import type { Feature, FeatureCollection, Point } from "geojson";
import { $, api, problem, signedOut, TOKEN_KEY } from "./page";
import { Statistics } from "./statistics";

type State = "open" | "acknowledged" | "resolved";

interface AlertEvent {
  event: "raised" | "updated";
  alert_id: string;
  force_id: string;
  citizen: string;
  score: number;
  drone_id: string;
  latitude: number;
  longitude: number;
  reported_at: string;
  opened_at: string;
  raised_at: string;
}

interface TransitionEvent {
  alert_id: string;
  seq: number;
  action: "acknowledge" | "assign" | "resolve" | "note";
  state: State;
  actor: string;
  at: string;
  raised_at: string | null;
  assignee: string | null;
  note: string | null;
}

interface Alert {
  id: string;
  citizen: string;
  score: number;
  droneId: string;
  latitude: number;
  longitude: number;
  raisedAt: number;
  state: State;
  seq: number;
  assignee: string | null;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  assignSeq?: number;
  notes: { seq: number; text: string }[];
}

interface ListedAlert {
  alert_id: string;
  citizen: string;
  score: number;
  drone_id: string;
  latitude: number;
  longitude: number;
  raised_at: string;
  last_drone_id: string | null;
  last_latitude: number | null;
  last_longitude: number | null;
  state: State;
  assignee: string | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
}

interface DronePosition {
  drone_id: string;
  latitude: number;
  longitude: number;
  reported_at: string;
}

interface DronesEvent {
  drones: DronePosition[];
  gone?: string[];
  reset?: boolean;
}

interface Config {
  style_url: string | null;
}

/** What the page did and when: read by tests and by `peaceland bench dashboard`. */
interface Recorder {
  drawn: Record<string, number>;
  /** When each alert's first event reached the page, and when the platform raised it:
   * the benchmark's hops (raised → received: the feed; received → drawn: the page). */
  received: Record<string, number>;
  raised: Record<string, number>;
  /** The alerts on the map now (resolved ones leave it). */
  onMap: Record<string, boolean>;
  /** The drones on the map now. */
  drones: number;
  feed: "connecting" | "live" | "lost";
  events: number;
}

declare global {
  interface Window {
    peaceland: Recorder;
  }
}

const recorder: Recorder = {
  drawn: {},
  received: {},
  raised: {},
  onMap: {},
  drones: 0,
  feed: "connecting",
  events: 0,
};
window.peaceland = recorder;

const HOUR = 3_600_000;
/** Rows the list shows (the newest): a long history never slows the page. */
const LIST_ROWS = 300;


// --------------------------------------------------------------------------- sign in

async function signIn(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const submit = $("sign-in") as HTMLButtonElement;
  if (submit.disabled) return;
  submit.disabled = true;
  try {
    const email = ($("email") as HTMLInputElement).value;
    const password = ($("password") as HTMLInputElement).value;
    const answer = await fetch("/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email, password }),
    });
    if (!answer.ok) {
      $("login-error").textContent = await problem(answer);
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, (await answer.json()).access_token);
    await start();
  } catch (error) {
    $("login-error").textContent = `The control plane did not answer (${error}).`;
  } finally {
    submit.disabled = false;
  }
}


let started = false;

async function start(): Promise<void> {
  if (started) return;
  const reason = new URLSearchParams(location.search).get("signed-out");
  if (reason) $("login-error").textContent = `Signed out: ${reason}`;
  if (!sessionStorage.getItem(TOKEN_KEY)) return;
  const me = await api("/v1/me");
  if (!me.ok) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("login").hidden = false;
    $("board").hidden = true;
    return;
  }
  started = true;
  const person = await me.json();
  const wanted = new URLSearchParams(location.search).get("force");
  const roles: Record<string, string> = person.roles ?? {};
  const forces = Object.entries(roles)
    .filter(([, role]) => role === "officer" || role === "analyst")
    .map(([force]) => force);
  const forceId = wanted && forces.includes(wanted) ? wanted : forces[0];
  if (!forceId) {
    $("login-error").textContent = "This account is no officer or analyst of any force.";
    sessionStorage.removeItem(TOKEN_KEY);
    return;
  }
  $("login").hidden = true;
  $("board").hidden = false;
  $("who").textContent = `${person.email} · ${roles[forceId]} of ${forceId}`;
  const config: Config = await (await fetch("/dashboard/config.json")).json();
  // The statistics first: a board that cannot start (no WebGL) leaves them working.
  new Statistics(forceId).attach();
  new Board(forceId, roles[forceId] === "officer", config).open();
}

// --------------------------------------------------------------------------- the board

class Board {
  private readonly alerts = new Map<string, Alert>();
  private readonly transitions = new Set<string>();
  private readonly early = new Map<string, TransitionEvent[]>();
  private readonly acting = new Set<string>();
  private readonly pending = new Set<string>();
  /** Every alert's id, newest raised first; the rows shown; the alert picked on the map. */
  private readonly order: string[] = [];
  private readonly listed = new Set<string>();
  private readonly rows = new Map<string, HTMLElement>();
  private picked: string | null = null;
  /** Alerts still to act on the list shows at most ("Show older" adds more). */
  private shown = LIST_ROWS;
  private countedAt = 0;
  private countTimer: number | null = null;
  private readonly drones = new Map<string, Feature<Point>>();
  private readonly movedDrones = new Set<string>();
  private readonly goneDrones = new Set<string>();
  private map!: MapLibre;
  private mapReady = false;
  private framed = false;
  private scheduled = false;

  constructor(
    private readonly forceId: string,
    private readonly officer: boolean,
    private readonly config: Config,
  ) {}

  open(): void {
    this.map = new MapLibre({
      container: "map",
      style: this.config.style_url ?? offlineStyle(),
      center: [2.35, 48.86],
      zoom: 11,
      attributionControl: false,
    });
    this.map.on("load", () => {
      // The drones under the alerts: an alert's red dot is never hidden by a drone.
      this.map.addSource("drones", {
        type: "geojson",
        data: { type: "FeatureCollection", features: [] },
        promoteId: "id",
      });
      this.map.addLayer({
        id: "drone-points",
        type: "circle",
        source: "drones",
        paint: {
          "circle-color": "#2b6cb0",
          "circle-radius": 3.5,
          "circle-stroke-color": "#fff",
          "circle-stroke-width": 1,
        },
      });
      this.map.addSource("alerts", {
        type: "geojson",
        data: { type: "FeatureCollection", features: [] },
        promoteId: "id",
        cluster: true,
        clusterRadius: 40,
        clusterMaxZoom: 14,
      });
      this.map.addLayer({
        id: "alert-clusters",
        type: "circle",
        source: "alerts",
        filter: ["has", "point_count"],
        paint: {
          "circle-color": "#d7301f",
          "circle-opacity": 0.75,
          "circle-radius": ["step", ["get", "point_count"], 12, 10, 18, 100, 26, 1000, 34],
          "circle-stroke-color": "#fff",
          "circle-stroke-width": 1,
        },
      });
      this.map.addLayer({
        id: "alert-points",
        type: "circle",
        source: "alerts",
        filter: ["!", ["has", "point_count"]],
        paint: {
          "circle-color": ["match", ["get", "state"], "acknowledged", "#fc8d59", "#d7301f"],
          "circle-radius": 7,
          "circle-stroke-color": "#fff",
          "circle-stroke-width": 2,
        },
      });
      this.map.on("click", "alert-points", (e) => {
        const id = e.features?.[0]?.properties?.id;
        if (typeof id === "string") this.select(id);
      });
      this.mapReady = true;
      this.schedule();
    });
    setInterval(() => this.counters(), 5_000);
    $("show-older").onclick = () => {
      this.shown += LIST_ROWS;
      this.drawList([]);
    };
    void this.load().then(() => this.listen());
  }

  /** The alerts still open or acknowledged (a month back): the feed's 12 hours may not
   * hold them all. */
  private async load(): Promise<void> {
    const since = new Date(Date.now() - 30 * 24 * HOUR).toISOString();
    let cursor: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const query = new URLSearchParams({ since, limit: "5000" });
      query.append("state", "open");
      query.append("state", "acknowledged");
      if (cursor) query.set("cursor", cursor);
      const answer = await api(`/v1/forces/${this.forceId}/alerts?${query}`);
      if (answer.status === 401) signedOut(await problem(answer));
      if (!answer.ok) {
        $("message").textContent = `Open alerts not loaded: ${await problem(answer)}`;
        return;
      }
      const page = await answer.json();
      for (const item of page.items) this.onListed(item);
      cursor = page.next_cursor;
      if (!cursor) return;
    }
  }

  private onListed(item: ListedAlert): void {
    if (this.alerts.has(item.alert_id)) return;
    this.alerts.set(item.alert_id, {
      id: item.alert_id,
      citizen: item.citizen,
      score: item.score,
      droneId: item.last_drone_id ?? item.drone_id,
      latitude: item.last_latitude ?? item.latitude,
      longitude: item.last_longitude ?? item.longitude,
      raisedAt: Date.parse(item.raised_at),
      state: item.state,
      seq: 0,
      assignee: item.assignee,
      acknowledgedAt: item.acknowledged_at ? Date.parse(item.acknowledged_at) : null,
      acknowledgedBy: item.acknowledged_by,
      notes: [],
    });
    this.pending.add(item.alert_id);
    this.schedule();
  }

  private listen(): void {
    // From the server's default (the last 12 hours), resumed from the last event on a
    // reconnection (Last-Event-ID, sent by the library).
    const url = `/v1/forces/${this.forceId}/alerts/feed?drones=true`;
    void fetchEventSource(url, {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` },
      openWhenHidden: true,
      onopen: async (answer) => {
        if (answer.status === 401 || answer.status === 403) {
          signedOut(await problem(answer));
        }
        const kind = answer.headers.get("content-type") ?? "";
        if (!answer.ok || !kind.startsWith("text/event-stream")) {
          throw new Error(answer.ok ? `not a feed (${kind})` : await problem(answer));
        }
        this.banner(null);
        recorder.feed = "live";
      },
      onmessage: (message) => {
        if (!message.data) return;
        if (message.id) recorder.events += 1; // alerts and transitions (drones have no id)
        if (message.event === "alert") this.onAlert(JSON.parse(message.data));
        else if (message.event === "transition") this.onTransition(JSON.parse(message.data));
        else if (message.event === "drones") this.onDrones(JSON.parse(message.data));
        else if (message.event === "error") {
          const detail = JSON.parse(message.data).detail ?? "the feed stopped";
          if (/token|sign in|no longer/.test(detail)) signedOut(detail);
          throw new Error(detail);
        }
      },
      onclose: () => {
        throw new Error("the feed closed");
      },
      onerror: (error) => {
        recorder.feed = "lost";
        this.banner(`Live feed lost (${error?.message ?? error}): reconnecting…`);
        // Tried again after the server's retry hint (1 s by default), from the last event
        // received (Last-Event-ID).
        return undefined;
      },
    });
  }

  private banner(text: string | null): void {
    const banner = $("feed-state");
    banner.hidden = text === null;
    banner.textContent = text ?? "";
    $("live").textContent = text === null ? "● live" : "○ reconnecting";
    $("live").className = text === null ? "live" : "lost";
  }

  private onAlert(event: AlertEvent): void {
    recorder.received[event.alert_id] ??= performance.timeOrigin + performance.now();
    recorder.raised[event.alert_id] ??= Date.parse(event.raised_at);
    const known = this.alerts.get(event.alert_id);
    if (known) {
      if (event.event === "updated") {
        known.latitude = event.latitude;
        known.longitude = event.longitude;
        known.droneId = event.drone_id;
        this.pending.add(known.id);
        this.schedule();
      }
      return;
    }
    this.alerts.set(event.alert_id, {
      id: event.alert_id,
      citizen: event.citizen,
      score: event.score,
      droneId: event.drone_id,
      latitude: event.latitude,
      longitude: event.longitude,
      raisedAt: Date.parse(event.raised_at),
      state: "open",
      seq: 0,
      assignee: null,
      acknowledgedAt: null,
      acknowledgedBy: null,
      notes: [],
    });
    this.pending.add(event.alert_id);
    const early = this.early.get(event.alert_id) ?? [];
    this.early.delete(event.alert_id);
    early.sort((a, b) => a.seq - b.seq).forEach((t) => this.onTransition(t));
    this.schedule();
  }

  /** The drones that moved or left since the feed's last `drones` event; `reset`: a
   * snapshot of the whole fleet follows (the first, or after falling behind). */
  private onDrones(event: DronesEvent): void {
    if (event.reset) {
      for (const id of this.drones.keys()) this.goneDrones.add(id);
      this.drones.clear();
      this.movedDrones.clear();
    }
    for (const id of event.gone ?? []) {
      this.drones.delete(id);
      this.movedDrones.delete(id);
      this.goneDrones.add(id);
    }
    for (const drone of event.drones) {
      this.goneDrones.delete(drone.drone_id);
      this.drones.set(drone.drone_id, {
        type: "Feature",
        id: drone.drone_id,
        geometry: { type: "Point", coordinates: [drone.longitude, drone.latitude] },
        properties: { id: drone.drone_id, reported_at: drone.reported_at },
      });
      this.movedDrones.add(drone.drone_id);
    }
    this.schedule();
  }

  private onTransition(event: TransitionEvent): void {
    const key = `${event.alert_id}:${event.seq}`;
    if (this.transitions.has(key)) return; // published twice: kept once
    const alert = this.alerts.get(event.alert_id);
    if (!alert) {
      // The two topics are read side by side: a transition may come before its alert.
      const early = this.early.get(event.alert_id) ?? [];
      early.push(event);
      this.early.set(event.alert_id, early);
      return;
    }
    this.transitions.add(key);
    // Transitions may come out of order (one published again later): the state is the
    // newest one's; what each says happened is kept whatever the order.
    if (event.seq > alert.seq) {
      alert.seq = event.seq;
      alert.state = event.state;
    }
    if (event.action === "assign" && event.seq >= (alert.assignSeq ?? 0)) {
      alert.assignee = event.assignee;
      alert.assignSeq = event.seq;
    }
    if (event.action === "acknowledge") {
      alert.acknowledgedAt = Date.parse(event.at);
      alert.acknowledgedBy = event.actor;
    }
    if (event.note) {
      alert.notes.push({ seq: event.seq, text: `${event.actor}: ${event.note}` });
      alert.notes.sort((a, b) => a.seq - b.seq);
    }
    this.pending.add(alert.id);
    this.schedule();
  }

  /** Apply what arrived since the last frame, once a frame: the map's changed features
   * only (no whole-map redraw), and the list's changed rows. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.draw();
    });
  }

  private draw(): void {
    if (this.mapReady && (this.movedDrones.size > 0 || this.goneDrones.size > 0)) {
      const add = [...this.movedDrones].map((id) => this.drones.get(id)!);
      const remove = [...this.goneDrones];
      this.movedDrones.clear();
      this.goneDrones.clear();
      (this.map.getSource("drones") as GeoJSONSource).updateData({ remove, add });
      recorder.drones = this.drones.size;
      $("drone-count").textContent = String(this.drones.size);
    }
    const changed = [...this.pending].map((id) => this.alerts.get(id)!).filter(Boolean);
    this.pending.clear();
    if (changed.length === 0) return;
    this.drawList(changed);
    if (this.mapReady) {
      this.drawMap(changed);
      // Drawn: on the map, and in the list when among its rows (the time the benchmark
      // and the tests read).
      const now = performance.timeOrigin + performance.now();
      for (const alert of changed) recorder.drawn[alert.id] ??= now;
    } else {
      changed.forEach((a) => this.pending.add(a.id)); // on the map once it is ready
    }
    this.countersSoon();
  }

  /** The counters go over every alert: twice a second at most, the last change included. */
  private countersSoon(): void {
    if (this.countTimer !== null) return;
    const wait = Math.max(0, 500 - (performance.now() - this.countedAt));
    this.countTimer = window.setTimeout(() => {
      this.countTimer = null;
      this.counters();
    }, wait);
  }

  private drawMap(changed: Alert[]): void {
    const source = this.map.getSource("alerts") as GeoJSONSource;
    const remove = changed.filter((a) => a.state === "resolved").map((a) => a.id);
    const add = changed.filter((a) => a.state !== "resolved").map(feature);
    source.updateData({ remove, add });
    for (const id of remove) delete recorder.onMap[id];
    for (const item of add) recorder.onMap[String(item.id)] = true;
    if (!this.framed && add.length) {
      this.framed = true;
      this.map.jumpTo({ center: [add[0].geometry.coordinates[0], add[0].geometry.coordinates[1]] });
    }
  }

  /** The list: the newest `shown` alerts still to act on (open, acknowledged), then the
   * newest resolved ones as room allows, newest first, and the alert picked on the map: a
   * long history never makes thousands of rows, and a resolved alert never pushes out one
   * still to act on. `order` keeps every alert, newest first. */
  private drawList(changed: Alert[]): void {
    for (const alert of changed) {
      if (!this.listed.has(alert.id)) {
        this.listed.add(alert.id);
        this.order.splice(this.rank(alert), 0, alert.id);
      }
    }
    if (this.picked && this.alerts.get(this.picked)?.state === "resolved") this.picked = null;
    let active = 0;
    for (const id of this.order) if (this.alerts.get(id)!.state !== "resolved") active += 1;
    let room = Math.max(0, this.shown - active);
    let activeRoom = this.shown;
    const wanted: string[] = [];
    for (const id of this.order) {
      const resolved = this.alerts.get(id)!.state === "resolved";
      if (!resolved && activeRoom > 0) {
        activeRoom -= 1;
        wanted.push(id);
      } else if (resolved && room > 0) {
        room -= 1;
        wanted.push(id);
      } else if (id === this.picked) {
        wanted.push(id);
      }
    }
    const keep = new Set(wanted);
    for (const [id, row] of this.rows) {
      if (!keep.has(id)) {
        row.remove();
        this.rows.delete(id);
      }
    }
    const refill = new Set(changed.map((a) => a.id));
    // Rows moved or added one by one (a new alert is one insertion at the top): the
    // officer's scroll position and focus stay where they were.
    const list = $("alerts");
    let next = list.firstElementChild;
    for (const id of wanted) {
      let row = this.rows.get(id);
      if (!row) {
        row = document.createElement("li");
        row.id = `alert-${id}`;
        this.rows.set(id, row);
        refill.add(id);
      }
      if (refill.has(id)) this.fill(row, this.alerts.get(id)!);
      if (row === next) next = next.nextElementSibling;
      else list.insertBefore(row, next);
    }
    const older = Math.max(0, active - this.shown);
    $("older-count").textContent =
      older > 0 ? `${older} older alerts still to act on are not listed (all are on the map).` : "";
    $("show-older").hidden = older === 0;
  }

  /** Where an alert goes in `order` (newest raised first, then by id). */
  private rank(alert: Alert): number {
    let low = 0;
    let high = this.order.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      const other = this.alerts.get(this.order[middle])!;
      const before =
        other.raisedAt > alert.raisedAt ||
        (other.raisedAt === alert.raisedAt && other.id < alert.id);
      if (before) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  private fill(row: HTMLElement, alert: Alert): void {
    row.className = `alert ${alert.state}`;
    row.replaceChildren();
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = `${alert.citizen} · score ${alert.score}`;
    const meta = document.createElement("div");
    meta.className = "meta";
    const by =
      alert.state === "acknowledged" && alert.acknowledgedBy ? ` by ${alert.acknowledgedBy}` : "";
    const to = alert.assignee ? ` · assigned to ${alert.assignee}` : "";
    meta.textContent =
      `${new Date(alert.raisedAt).toLocaleTimeString()} · drone ${alert.droneId} · ` +
      `${alert.state}${by}${to}`;
    row.append(title, meta);
    for (const note of alert.notes) {
      const line = document.createElement("div");
      line.className = "note";
      line.textContent = note.text;
      row.append(line);
    }
    if (this.officer && alert.state !== "resolved") {
      const actions = document.createElement("div");
      actions.className = "actions";
      const button = (label: string, run: () => void) => {
        const b = document.createElement("button");
        b.textContent = label;
        b.dataset.action = label.toLowerCase();
        b.onclick = (e) => {
          e.stopPropagation();
          run();
        };
        actions.append(b);
      };
      if (alert.state === "open") button("Acknowledge", () => this.act(alert, { action: "acknowledge" }));
      button("Assign", () => {
        const assignee = prompt("Assign to (e-mail of an officer of the force):");
        if (assignee) void this.act(alert, { action: "assign", assignee });
      });
      button("Note", () => {
        const note = prompt("Note:");
        if (note) void this.act(alert, { action: "note", note });
      });
      button("Resolve", () => this.act(alert, { action: "resolve" }));
      row.append(actions);
    }
    row.onclick = () => this.select(alert.id);
  }

  private async act(alert: Alert, body: Record<string, string>): Promise<void> {
    if (this.acting.has(alert.id)) return; // one action at a time per alert (a double click)
    this.acting.add(alert.id);
    const buttons = document.querySelectorAll<HTMLButtonElement>(`#alert-${alert.id} button`);
    buttons.forEach((b) => (b.disabled = true));
    const key = requestKey();
    try {
      // Sent again with the same key if the answer is lost: made once.
      let answer: Response | null = null;
      for (let attempt = 0; attempt < 3 && answer === null; attempt++) {
        try {
          answer = await api(`/v1/forces/${this.forceId}/alerts/${alert.id}/transitions`, {
            method: "POST",
            body: JSON.stringify(body),
            headers: { "Idempotency-Key": key },
          });
        } catch {
          await new Promise((r) => setTimeout(r, 1_000));
        }
      }
      if (answer === null) $("message").textContent = "The control plane did not answer.";
      else if (answer.status === 401) signedOut(await problem(answer));
      else $("message").textContent = answer.ok ? "" : await problem(answer);
    } finally {
      this.acting.delete(alert.id);
      buttons.forEach((b) => (b.disabled = false));
    }
    // The change itself arrives on the feed, for this page as for every other one.
  }

  private select(id: string): void {
    const alert = this.alerts.get(id);
    if (!alert) return;
    this.map.easeTo({ center: [alert.longitude, alert.latitude], zoom: 15 });
    if (!this.rows.has(id)) {
      // Older than the list's rows: shown at its end while it is the one picked.
      this.picked = id;
      this.drawList([]);
    }
    document.getElementById(`alert-${id}`)?.scrollIntoView({ block: "nearest" });
  }

  private counters(): void {
    this.countedAt = performance.now();
    const midnight = new Date();
    midnight.setHours(0, 0, 0, 0);
    let open = 0;
    const reactions: number[] = [];
    for (const alert of this.alerts.values()) {
      if (alert.state === "open") open += 1;
      if (alert.acknowledgedAt !== null && alert.acknowledgedAt >= midnight.getTime()) {
        reactions.push((alert.acknowledgedAt - alert.raisedAt) / 1000);
      }
    }
    reactions.sort((a, b) => a - b);
    $("open-count").textContent = String(open);
    $("acked-count").textContent = String(reactions.length);
    $("p50").textContent = seconds(percentile(reactions, 50));
    $("p90").textContent = seconds(percentile(reactions, 90));
  }
}

/** A request's idempotency key (crypto.randomUUID needs a secure context; this does not). */
function requestKey(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function feature(alert: Alert): Feature<Point> {
  return {
    type: "Feature",
    id: alert.id,
    geometry: { type: "Point", coordinates: [alert.longitude, alert.latitude] },
    properties: { id: alert.id, state: alert.state, citizen: alert.citizen },
  };
}

/** Nearest rank, as the API computes it: a time some alert really took. */
function percentile(sorted: number[], percent: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.max(1, Math.ceil((percent * sorted.length) / 100)) - 1];
}

function seconds(value: number | null): string {
  if (value === null) return "–";
  return value < 120 ? `${value.toFixed(1)} s` : `${(value / 60).toFixed(1)} min`;
}

/** A style that needs no network: water, the world's land (bundled), a zone grid. */
function offlineStyle(): StyleSpecification {
  return {
    version: 8,
    sources: {
      land: { type: "geojson", data: "/dashboard/static/land.geojson" },
      grid: { type: "geojson", data: grid(2.0, 48.6, 2.7, 49.1, 0.02) },
    },
    layers: [
      { id: "water", type: "background", paint: { "background-color": "#dbe7f0" } },
      { id: "land", type: "fill", source: "land", paint: { "fill-color": "#f4f1ea" } },
      {
        id: "coast",
        type: "line",
        source: "land",
        paint: { "line-color": "#9aa7b0", "line-width": 1 },
      },
      {
        id: "grid",
        type: "line",
        source: "grid",
        minzoom: 9,
        paint: { "line-color": "#c9c2b4", "line-width": 0.5 },
      },
    ],
  };
}

/** The zone grid (the analytics' zones: cells of ``step`` degrees) over an area. */
function grid(west: number, south: number, east: number, north: number, step: number) {
  const lines: FeatureCollection = { type: "FeatureCollection", features: [] };
  for (let x = west; x <= east + 1e-9; x += step) {
    lines.features.push({
      type: "Feature",
      properties: {},
      geometry: { type: "LineString", coordinates: [[x, south], [x, north]] },
    });
  }
  for (let y = south; y <= north + 1e-9; y += step) {
    lines.features.push({
      type: "Feature",
      properties: {},
      geometry: { type: "LineString", coordinates: [[west, y], [east, y]] },
    });
  }
  return lines;
}

$("login-form").addEventListener("submit", (e) => void signIn(e as SubmitEvent));
($("sign-in") as HTMLButtonElement).disabled = false; // ready: the form is ours to send
$("logout").addEventListener("click", async () => {
  await api("/v1/auth/logout", { method: "POST" });
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});
void start();
