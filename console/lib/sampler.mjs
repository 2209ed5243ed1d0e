// The console's samples of tx_message.stats: every few seconds while a
// session is logged in, kept in memory for the last hour, for the charts of
// send, ack and lag rates.  Nothing is written to the database for them.
// Each session samples with its own connection, so it keeps only what its
// role may monitor.

const KEEP_MS = 60 * 60 * 1000;
const COLUMNS = ['backlog', 'delivered_total', 'acked_total', 'sent_total'];

export class Sampler {
  constructor(pool, everyMs = 5000) {
    this.pool = pool;
    this.everyMs = everyMs;
    this.samples = [];	// { t, rows: Map(key -> [backlog, delivered, acked, sent]) }
    this.timer = null;
    this.running = false;
  }

  start() {
    if (this.running)
      return;
    this.running = true;
    const tick = async () => {
      try {
        await this.sample();
      } catch {
        // a failed sample (the server restarting, say) leaves a gap in the chart
      }
      if (!this.running)
        return;			// stopped while the sample was under way
      this.timer = setTimeout(tick, this.everyMs);
      this.timer.unref();
    };
    tick();
  }

  // Sampling again after a pause: the charts show a gap.
  resume() {
    this.start();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  async sample() {
    const { rows } = await this.pool.query(
      `SELECT topic, consumer_group, backlog, delivered_total, acked_total, sent_total
         FROM tx_message.stats`);
    const t = Date.now();
    const m = new Map();
    // the counters only, as numbers: an hour of samples of many groups stays small
    for (const r of rows)
      m.set(key(r.topic, r.consumer_group), COLUMNS.map((c) => (r[c] === null ? null : Number(r[c]))));
    this.samples.push({ t, rows: m });
    while (this.samples.length > 0 && this.samples[0].t < t - KEEP_MS)
      this.samples.shift();
  }

  // [[t, value], ...] of a column of one row (topic, group or null).
  series(topic, group, column) {
    const k = key(topic, group);
    const i = COLUMNS.indexOf(column);
    return this.samples
      .filter((s) => s.rows.has(k) && s.rows.get(k)[i] !== null)
      .map((s) => [s.t, s.rows.get(k)[i]]);
  }

  // Per-second rates of a counter column: [[t, rate], ...].
  rates(topic, group, column) {
    const pts = this.series(topic, group, column);
    const out = [];
    for (let i = 1; i < pts.length; i++) {
      const dt = (pts[i][0] - pts[i - 1][0]) / 1000;
      if (dt > 0)
        out.push([pts[i][0], Math.max(0, (pts[i][1] - pts[i - 1][1]) / dt)]);
    }
    return out;
  }

  // The latest rate of a counter, or null before two samples.
  lastRate(topic, group, column) {
    const r = this.rates(topic, group, column);
    return r.length ? r[r.length - 1][1] : null;
  }
}

function key(topic, group) {
  return `${topic}\u0000${group ?? ''}`;
}
