// The force's statistics from its analytics lake, under the live board: alerts per hour,
// officers' reaction time by hour, the drones and citizens with most alerts, and the words
// heard with alerts against without. Asked of the control plane one at a time when the
// panel is opened (a force has one analytics seat at a time), each chart beside a table of
// the same figures (for screen readers, and for whoever wants the numbers).
import uPlot from "uplot";
import { $, api, problem, signedOut } from "./page";

const HOUR = 3_600_000;
const TOP = 10;

type Row = Record<string, string | number | null>;
type Cell = string | number | null | undefined;

interface Answer {
  name: string;
  since: string;
  until: string;
  columns: string[];
  rows: Row[];
}

/** What the panel asks, in order, and how each answer is shown. */
const ASKED: { name: string; title: string }[] = [
  { name: "alerts-per-hour", title: "alerts per hour" },
  { name: "reaction-by-hour", title: "reaction time by hour" },
  { name: "top-drones", title: "drones with most alerts" },
  { name: "top-citizens", title: "citizens most often flagged" },
  { name: "words", title: "words heard" },
];

class Refused extends Error {}

export class Statistics {
  private readonly charts: uPlot[] = [];
  private generation = 0;
  private loadedFor: string | null = null;

  constructor(private readonly forceId: string) {}

  attach(): void {
    const panel = $<HTMLDetailsElement>("statistics");
    panel.addEventListener("toggle", () => {
      if (panel.open) this.resize(); // drawn, or resized, while it was closed
      if (panel.open && this.loadedFor !== this.windowKey()) void this.load();
    });
    $<HTMLSelectElement>("stats-window").onchange = () => {
      if (panel.open) void this.load();
    };
    $<HTMLButtonElement>("stats-refresh").onclick = () => void this.load();
    window.addEventListener("resize", () => this.resize());
    // Opened while the board was still starting: its toggle came before this listener.
    if (panel.open) void this.load();
  }

  private windowKey(): string {
    return $<HTMLSelectElement>("stats-window").value;
  }

  private async load(): Promise<void> {
    const generation = ++this.generation; // a newer load makes this one stop asking
    const current = () => generation === this.generation;
    const state = $("stats-state");
    const refresh = $<HTMLButtonElement>("stats-refresh");
    refresh.disabled = true;
    state.dataset.state = "loading";
    const hours = Number(this.windowKey());
    const until = new Date();
    const since = new Date(until.getTime() - hours * HOUR);
    const answers = new Map<string, Answer>();
    try {
      for (const [index, asked] of ASKED.entries()) {
        if (!current()) return;
        const what = `Asking the lake (${index + 1} of ${ASKED.length}): ${asked.title}…`;
        answers.set(asked.name, await this.ask(asked.name, since, until, what, current));
      }
      if (!current()) return;
      this.draw(answers, since, until);
      this.loadedFor = this.windowKey();
      const span = `${since.toLocaleString()} to ${until.toLocaleString()}`;
      state.textContent = `From the analytics lake, ${span}.`;
      state.dataset.hours = `${hours}`;
      state.dataset.state = "loaded";
    } catch (error) {
      if (!current()) return;
      state.textContent =
        error instanceof Refused ? error.message : `Statistics not loaded (${error}).`;
      state.dataset.state = "failed";
    } finally {
      if (current()) refresh.disabled = false;
    }
  }

  /** One statistic; a busy lake (429) is asked again after the wait it says, twice. */
  private async ask(
    name: string,
    since: Date,
    until: Date,
    what: string,
    current: () => boolean,
  ): Promise<Answer> {
    const query = new URLSearchParams({
      since: since.toISOString(),
      until: until.toISOString(),
      top: `${TOP}`,
    });
    const state = $("stats-state");
    for (let attempt = 0; ; attempt++) {
      state.textContent = what;
      const answer = await api(`/v1/forces/${this.forceId}/statistics/${name}?${query}`);
      // Signed out, or no longer an officer or analyst of the force: as the feed does.
      if (answer.status === 401 || answer.status === 403) signedOut(await problem(answer));
      if (answer.status === 429 && attempt < 2 && current()) {
        const wait = Math.min(Number(answer.headers.get("Retry-After")) || 2, 10);
        state.textContent = `The lake is busy with other questions: asking again in ${wait} s…`;
        await new Promise((done) => setTimeout(done, wait * 1000));
        continue;
      }
      if (!answer.ok) throw new Refused(`Statistics not loaded: ${await problem(answer)}`);
      return (await answer.json()) as Answer;
    }
  }

  private draw(answers: Map<string, Answer>, since: Date, until: Date): void {
    for (const chart of this.charts.splice(0)) chart.destroy();
    // Every hour of the window, so that an hour without alerts shows as one.
    const first = Math.ceil(since.getTime() / HOUR) * HOUR - HOUR;
    const hours: number[] = [];
    for (let at = first; at < until.getTime(); at += HOUR) hours.push(at / 1000);
    const byHour = (rows: Row[], column: string, scale = 1): (number | null)[] => {
      const found = new Map(rows.map((r) => [Date.parse(String(r.hour)) / 1000, r[column]]));
      return hours.map((at) => {
        const value = found.get(at);
        return typeof value === "number" ? value / scale : null;
      });
    };
    const alerts = answers.get("alerts-per-hour")?.rows ?? [];
    const perHour = byHour(alerts, "alerts").map((v) => v ?? 0);
    const bars = uPlot.paths.bars!({ size: [0.8, 40] });
    this.chart("chart-alerts", [hours, perHour], [
      { label: "alerts", stroke: "#d7301f", fill: "#d7301f99", paths: bars },
    ]);
    this.table(
      "data-alerts",
      ["hour", "alerts"],
      alerts.map((r) => [hourOf(r.hour), r.alerts]),
      alerts.map((r) => String(r.hour)),
    );
    const reaction = answers.get("reaction-by-hour")?.rows ?? [];
    const median = byHour(reaction, "median_seconds", 60);
    const p90 = byHour(reaction, "p90_seconds", 60);
    this.chart("chart-reaction", [hours, median, p90], [
      { label: "median (min)", stroke: "#2b6cb0", width: 2 },
      { label: "90th percentile (min)", stroke: "#fc8d59", width: 2, dash: [6, 4] },
    ]);
    this.table(
      "data-reaction",
      ["hour", "alerts", "acted on", "median (s)", "p90 (s)"],
      reaction.map((r) => [hourOf(r.hour), r.alerts, r.acted_on, r.median_seconds, r.p90_seconds]),
      reaction.map((r) => String(r.hour)),
    );
    const drones = answers.get("top-drones")?.rows ?? [];
    this.table(
      "table-drones",
      ["drone", "alerts"],
      drones.map((r) => [r.drone_id, r.alerts]),
      drones.map((r) => String(r.drone_id)),
    );
    const citizens = answers.get("top-citizens")?.rows ?? [];
    this.table(
      "table-citizens",
      ["citizen", "alerts"],
      citizens.map((r) => [r.citizen, r.alerts]),
      citizens.map((r) => String(r.citizen)),
    );
    const words = answers.get("words")?.rows ?? [];
    this.table(
      "table-words",
      ["word", "per report with an alert", "per report without"],
      words.map((r) => [r.word, r.per_report_with_alerts, r.per_report_without_alerts]),
      words.map((r) => String(r.word)),
    );
  }

  private chart(id: string, data: uPlot.AlignedData, series: uPlot.Series[]): void {
    const box = $(id);
    box.replaceChildren();
    // What the chart was given, for the tests: the sum of its first series.
    const first = (data[1] ?? []) as (number | null | undefined)[];
    box.dataset.sum = `${first.reduce<number>((sum, v) => sum + (v ?? 0), 0)}`;
    const chart = new uPlot(
      {
        width: Math.max(box.clientWidth, 240),
        height: 180,
        series: [{}, ...series],
        axes: [{}, { size: 40 }],
        scales: { x: { time: true } },
        legend: { show: true },
      },
      data,
      box,
    );
    this.charts.push(chart);
  }

  private resize(): void {
    for (const chart of this.charts) {
      const box = chart.root.parentElement;
      if (box) chart.setSize({ width: Math.max(box.clientWidth, 240), height: 180 });
    }
  }

  /** A table of ``rows``, each row's ``data-key`` its key (an hour as the API says it, a
   * drone, a citizen, a word): what the tests compare with the API's answers. */
  private table(id: string, header: string[], rows: Cell[][], keys: string[]): void {
    const table = $<HTMLTableElement>(id);
    const head = document.createElement("tr");
    for (const text of header) {
      const cell = document.createElement("th");
      cell.textContent = text;
      head.append(cell);
    }
    const body = rows.map((row, index) => {
      const line = document.createElement("tr");
      line.dataset.key = keys[index];
      for (const value of row) {
        const cell = document.createElement("td");
        cell.textContent = value === null || value === undefined ? "–" : `${value}`;
        line.append(cell);
      }
      return line;
    });
    if (rows.length === 0) {
      const line = document.createElement("tr");
      const cell = document.createElement("td");
      cell.colSpan = header.length;
      cell.textContent = "none in this window";
      line.append(cell);
      body.push(line);
    }
    table.replaceChildren(head, ...body);
  }
}

function hourOf(value: string | number | null | undefined): string {
  return value === null || value === undefined ? "–" : new Date(String(value)).toLocaleString();
}
