/**
 * The call shapes of hashicorp/go-plugin's own benchmark (`../shared/peers/goplugin/`), measured
 * through `host.call`, and the runner of that peer, for `rpc.ts --peer` (issue 11). Private: the
 * leading `_` keeps `all.ts` from running it as a benchmark.
 *
 * - `seq_<n>B`: warm-up calls, then calls one at a time, each timed.
 * - `conc8_<n>B`: 8 closed-loop callers sharing the host for a fixed time, each timed.
 *
 * @module
 */
import { dirname, join } from "node:path";
import type { PluginHost } from "../../src/host/mod.ts";
import { BENCH_PLUGIN as PLUGIN, latencyUs, paramsOf, progressLog, round } from "./_common.ts";

const progress = progressLog("rpc");

/** One call with fixed params; resolves when its answer is in. */
export type ShapeCall = () => Promise<unknown>;

/** What a shape measured, with the peer's field names. */
export interface ShapeResult {
  readonly scenario: string;
  readonly calls: number;
  readonly calls_per_s: number;
  readonly p50_us: number;
  readonly p99_us: number;
  readonly callers?: number;
}

/** `warmup` calls, then `n` sequential calls, each timed. */
export async function sequentialShape(
  scenario: string,
  call: ShapeCall,
  n: number,
  warmup: number,
): Promise<ShapeResult> {
  for (let i = 0; i < warmup; i++) await call();
  const samples = new Float64Array(n);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const s = performance.now();
    await call();
    samples[i] = performance.now() - s;
  }
  const seconds = (performance.now() - t0) / 1000;
  const { p50_us, p99_us } = latencyUs(samples);
  return { scenario, calls: n, calls_per_s: Math.round(n / seconds), p50_us, p99_us };
}

/** `callers` closed-loop callers for `durationMs` after `warmup` sequential calls. */
export async function concurrentShape(
  scenario: string,
  call: ShapeCall,
  callers: number,
  durationMs: number,
  warmup: number,
): Promise<ShapeResult> {
  for (let i = 0; i < warmup; i++) await call();
  const samples: number[][] = Array.from({ length: callers }, () => []);
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  await Promise.all(samples.map(async (mine) => {
    for (;;) {
      const s = performance.now();
      if (s > deadline) return;
      await call();
      mine.push(performance.now() - s);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  const all = samples.flat();
  const { p50_us, p99_us } = latencyUs(all);
  return {
    scenario,
    callers,
    calls: all.length,
    calls_per_s: Math.round(all.length / seconds),
    p50_us,
    p99_us,
  };
}

/** Where the peer's folder is, relative to this checkout (`../shared/peers/goplugin`). */
export const GOPLUGIN_DIR: string = join(
  dirname(dirname(dirname(import.meta.dirname!))),
  "shared",
  "peers",
  "goplugin",
);

/** Whether the go-plugin peer can run here (its `run.sh` and a `go` on the PATH). */
export function goPluginAvailable(dir = GOPLUGIN_DIR): boolean {
  try {
    Deno.statSync(join(dir, "run.sh"));
  } catch {
    return false;
  }
  for (const p of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (p !== "" && Deno.statSync(join(p, "go")).isFile) return true;
    } catch { /* not there */ }
  }
  return false;
}

/** The size of each of the peer's shapes, as its `run.sh` flags. */
export interface PeerRunOptions {
  readonly seqSmall: number;
  readonly seqLarge: number;
  readonly concSeconds: number;
  readonly warmup: number;
}

/**
 * A copy of the read-only peer folder in a temp dir (shared/ is read-only in CI), with its own
 * `GOCACHE`; `run(options)` runs it once (netrpc) and returns its scenarios by name.
 */
export async function preparePeer(
  dir = GOPLUGIN_DIR,
): Promise<
  AsyncDisposable & { run(o: PeerRunOptions): Promise<Map<string, Record<string, unknown>>> }
> {
  const tmp = await Deno.makeTempDir({ prefix: "plugsconc-goplugin-" });
  const copy = join(tmp, "goplugin");
  const cp = await new Deno.Command("cp", { args: ["-r", dir, copy] }).output();
  if (!cp.success) throw new Error(`cannot copy ${dir}: ${new TextDecoder().decode(cp.stderr)}`);
  const run = async (o: PeerRunOptions) => {
    const out = await new Deno.Command(join(copy, "run.sh"), {
      args: [
        "-transport",
        "netrpc",
        "-starts",
        "1",
        "-seq",
        String(o.seqSmall),
        "-seq-large",
        String(o.seqLarge),
        "-dur",
        `${o.concSeconds}s`,
        "-warmup",
        String(o.warmup),
      ],
      env: { GOCACHE: join(tmp, "gocache") },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(
        `go-plugin peer failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
      );
    }
    const scenarios = new Map<string, Record<string, unknown>>();
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      if (line.trim() === "") continue;
      const r = JSON.parse(line) as Record<string, unknown>;
      scenarios.set(String(r.scenario), r);
    }
    return scenarios;
  };
  return {
    run,
    [Symbol.asyncDispose]: () => Deno.remove(tmp, { recursive: true }).catch(() => {}),
  };
}

/** Ours / theirs of one shape: latency ratios (lower is better) and throughput (higher). */
export function shapeRatio(ours: ShapeResult, theirs: Record<string, unknown> | undefined) {
  if (theirs === undefined) return null;
  const n = (k: string) => Number(theirs[k]);
  return {
    peer_calls_per_s: round(n("calls_per_s"), 0),
    peer_p50_us: round(n("p50_us")),
    peer_p99_us: round(n("p99_us")),
    calls_per_s_ratio: round(ours.calls_per_s / n("calls_per_s"), 2),
    p50_ratio: round(ours.p50_us / n("p50_us"), 2),
  };
}

// ---- the peer's shapes ----------------------------------------------------------------------

const SHAPE_SEQ_SMALL = 5_000;
const SHAPE_SEQ_LARGE = 2_000;
const SHAPE_CONC_SECONDS = 3;
const SHAPE_WARMUP = 500;

/** go-plugin's four shapes through `host.call`, in its order. */
async function ourShapes(host: PluginHost): Promise<ShapeResult[]> {
  const small = paramsOf(100);
  const big = paramsOf(64 * 1024);
  const call = (p: unknown) => () => host.call(PLUGIN, "echo", p);
  const ms = SHAPE_CONC_SECONDS * 1000;
  return [
    await sequentialShape("seq_100B", call(small), SHAPE_SEQ_SMALL, SHAPE_WARMUP),
    await concurrentShape("conc8_100B", call(small), 8, ms, SHAPE_WARMUP),
    await sequentialShape("seq_65536B", call(big), SHAPE_SEQ_LARGE, SHAPE_WARMUP),
    await concurrentShape("conc8_65536B", call(big), 8, ms, SHAPE_WARMUP),
  ];
}

/**
 * What `rpc.ts` prints as `peer_shapes`: `rounds` rounds of (go-plugin's run, our shapes), interleaved so that a change of load hits
 * both; each of our shapes is compared with the peer's run of its round, and the targets of
 * issue 11 are checked on the median ratios.
 */
export async function peerShapes(
  host: PluginHost,
  options: { withPeer: boolean; rounds: number; inFlight64: number },
) {
  const { withPeer, rounds, inFlight64 } = options;
  await using peer = withPeer ? await preparePeer() : undefined;
  type Run = Record<string, ShapeResult & { vs_go_plugin: ReturnType<typeof shapeRatio> }>;
  const runs: Run[] = [];
  for (let r = 0; r < rounds; r++) {
    let theirs: Map<string, Record<string, unknown>> | undefined;
    if (peer !== undefined) {
      progress(`peer shapes round ${r + 1}/${rounds}: go-plugin`);
      theirs = await peer.run({
        seqSmall: SHAPE_SEQ_SMALL,
        seqLarge: SHAPE_SEQ_LARGE,
        concSeconds: SHAPE_CONC_SECONDS,
        warmup: SHAPE_WARMUP,
      });
    }
    progress(`peer shapes round ${r + 1}/${rounds}: host.call`);
    const ours = await ourShapes(host);
    runs.push(Object.fromEntries(ours.map((o) => [o.scenario, {
      ...o,
      vs_go_plugin: shapeRatio(o, theirs?.get(o.scenario)),
    }])));
  }
  const med = (f: (run: Run) => number | undefined) => {
    const v = runs.map(f).filter((x): x is number => x !== undefined).sort((a, b) => a - b);
    return v.length === 0 ? null : v[Math.floor(v.length / 2)]!;
  };
  const ratio = (shape: string, key: "p50_ratio" | "calls_per_s_ratio") =>
    med((run) => run[shape]?.vs_go_plugin?.[key]);
  const seqSmall = ratio("seq_100B", "p50_ratio");
  const conc8Small = ratio("conc8_100B", "calls_per_s_ratio");
  const seqLarge = ratio("seq_65536B", "p50_ratio");
  const conc8Large = ratio("conc8_65536B", "calls_per_s_ratio");
  const peerConc8Small = med((run) => run.conc8_100B?.vs_go_plugin?.peer_calls_per_s);
  const inFlightRatio = peerConc8Small === null ? null : round(inFlight64 / peerConc8Small, 2);
  const p99OverP50 = med((run) => run.seq_100B!.p99_us / run.seq_100B!.p50_us);
  const ok = (v: number | null, test: (v: number) => boolean) => v === null ? null : test(v);
  return {
    rounds: runs,
    median_ratios: {
      seq_100B_p50: seqSmall,
      conc8_100B_calls_per_s: conc8Small,
      in_flight_64_100B_calls_per_s: inFlightRatio,
      seq_65536B_p50: seqLarge,
      conc8_65536B_calls_per_s: conc8Large,
      seq_100B_p99_over_p50: p99OverP50 === null ? null : round(p99OverP50, 2),
    },
    targets: {
      seq_100B_p50_ratio_max: 0.8,
      seq_100B_p50_ok: ok(seqSmall, (v) => v <= 0.8),
      conc8_100B_ratio_min: 2,
      conc8_100B_ok: ok(conc8Small, (v) => v >= 2),
      in_flight_64_100B_ratio_min: 3,
      in_flight_64_100B_ok: ok(inFlightRatio, (v) => v >= 3),
      seq_65536B_p50_ratio_max: 1,
      seq_65536B_p50_ok: ok(seqLarge, (v) => v <= 1),
      conc8_65536B_ratio_min: 1,
      conc8_65536B_ok: ok(conc8Large, (v) => v >= 1),
      seq_100B_p99_over_p50_max: 3,
      seq_100B_p99_ok: ok(p99OverP50, (v) => v <= 3),
    },
  };
}
