/**
 * HAProxy's agent-check protocol, client side: Drover connects to a small
 * agent beside each backend, reads one line of words, and applies them to
 * the backend's live state.
 *
 * Words (case-insensitive), separated by spaces, tabs or commas, in any order:
 * - `N%`: weight as a percent of the configured weight (whole number 0-1000);
 * - `weight:N`: an absolute weight (whole number 0-1000);
 * - `maxconn:N`: at most N open connections or requests (0-1000000; 0 lifts the limit, as in HAProxy);
 * - `ready`, `drain`, `maint`: the administrative state;
 * - `up`, `down`, `fail`, `stopped`: the health (the last three mean down);
 * - `#` starts a free-text reason (the rest of the line), kept only with a down word.
 *
 * `N%` and `weight:N` become the backend's load report, which the agent-load
 * strategy reads (and forgets after its `maxAge`); other strategies use the
 * configured weight. Unlike HAProxy, where the last word of a kind wins, two
 * different words of one kind (`drain maint`, `up down`, `50% weight:2`) make
 * the whole reply invalid: an agent that says both is confused, and guessing
 * could take a backend out.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { BackendStates } from '../balancer/state.js';
import type { AgentConfig } from '../config/schema.js';
import type { Logger } from '../log.js';

/** What one agent line said; words it did not say are absent (their state stays). */
export interface AgentReply {
  readonly percent?: number;
  readonly weight?: number;
  /** 0 lifts the limit (HAProxy's meaning of `maxconn:0`). */
  readonly maxConn?: number;
  readonly admin?: 'ready' | 'drain' | 'maint';
  readonly op?: 'up' | 'down';
  /** The text after `#`, with a down word only. */
  readonly reason?: string;
}

/** The longest reply line read; a longer one is refused. */
export const MAX_REPLY_BYTES = 1024;
/** The longest reason kept (longer ones are cut). */
export const MAX_REASON_LENGTH = 200;
/** The highest `N%` accepted: ten times the configured weight. */
export const MAX_PERCENT = 1000;
/** The highest `weight:N` accepted, as for configured weights. */
export const MAX_WEIGHT = 1000;
/** The highest `maxconn:N` accepted, as in HAProxy. */
export const MAX_MAXCONN = 1_000_000;

type Kind = 'load' | 'maxconn' | 'admin' | 'op';

/**
 * Parses one agent-check reply line (HAProxy's words, see above). The line
 * ends at the first CR or LF. An empty line, or one with only a `#` reason,
 * is a valid reply that changes nothing (`{}`). Returns an Error saying what
 * is wrong for an unknown word, a bad number or two words that conflict;
 * never throws.
 */
export function parseAgentReply(line: string): AgentReply | Error {
  let text = String(line);
  const eol = text.search(/[\r\n]/);
  if (eol >= 0) text = text.slice(0, eol);
  let reason: string | undefined;
  const hash = text.indexOf('#');
  if (hash >= 0) {
    reason = text.slice(hash + 1).trim().slice(0, MAX_REASON_LENGTH).trim();
    text = text.slice(0, hash);
  }
  const said = new Map<Kind, { word: string; value: string }>();
  let percent: number | undefined;
  let weight: number | undefined;
  let maxConn: number | undefined;
  let admin: AgentReply['admin'];
  let op: AgentReply['op'];
  for (const word of text.split(/[ \t,]+/)) {
    if (!word) continue;
    const lower = word.toLowerCase();
    let kind: Kind;
    let value: string;
    if (lower.endsWith('%')) {
      const n = whole(lower.slice(0, -1), MAX_PERCENT);
      if (n === undefined) return new Error(`${preview(word)} is not a whole percentage 0-${MAX_PERCENT}%`);
      kind = 'load';
      value = `${n}%`;
      percent = n;
      weight = undefined;
    } else if (lower.startsWith('weight:')) {
      const n = whole(lower.slice(7), MAX_WEIGHT);
      if (n === undefined) return new Error(`weight must be a whole number 0-${MAX_WEIGHT}, got ${preview(word.slice(7))}`);
      kind = 'load';
      value = `weight:${n}`;
      weight = n;
      percent = undefined;
    } else if (lower.startsWith('maxconn:')) {
      const n = whole(lower.slice(8), MAX_MAXCONN);
      if (n === undefined) return new Error(`maxconn must be a whole number 0-${MAX_MAXCONN}, got ${preview(word.slice(8))}`);
      kind = 'maxconn';
      value = String(n);
      maxConn = n;
    } else if (lower === 'ready' || lower === 'drain' || lower === 'maint') {
      kind = 'admin';
      value = lower;
      admin = lower;
    } else if (lower === 'up' || lower === 'down' || lower === 'fail' || lower === 'stopped') {
      kind = 'op';
      value = lower === 'up' ? 'up' : 'down';
      op = value === 'up' ? 'up' : 'down';
    } else {
      return new Error(`unknown word ${preview(word)}`);
    }
    const before = said.get(kind);
    if (before && before.value !== value) return new Error(`${preview(before.word)} and ${preview(word)} conflict`);
    said.set(kind, { word, value });
  }
  return {
    ...(percent !== undefined ? { percent } : {}),
    ...(weight !== undefined ? { weight } : {}),
    ...(maxConn !== undefined ? { maxConn } : {}),
    ...(admin ? { admin } : {}),
    ...(op ? { op } : {}),
    // HAProxy keeps the description only with a state change to down.
    ...(op === 'down' && reason ? { reason } : {}),
  };
}

/**
 * Applies a reply to a backend's live state; what the reply does not mention
 * stays as it was. `drain` and `maint` replace each other, `ready` lifts both.
 */
export function applyAgentReply(states: BackendStates, id: string, reply: AgentReply): void {
  if (reply.percent !== undefined) states.setReport(id, { percent: reply.percent });
  else if (reply.weight !== undefined) states.setReport(id, { weight: reply.weight });
  if (reply.maxConn !== undefined) states.setMaxConn(id, reply.maxConn === 0 ? undefined : reply.maxConn);
  if (reply.admin === 'drain') {
    states.setAgentDrain(id, true);
    states.setMaintenance(id, false);
  } else if (reply.admin === 'maint') {
    states.setMaintenance(id, true);
    states.setAgentDrain(id, false);
  } else if (reply.admin === 'ready') {
    states.setAgentDrain(id, false);
    states.setMaintenance(id, false);
  }
  if (reply.op !== undefined) states.setAgentDown(id, reply.op === 'down');
}

/**
 * Lifts everything agents set on `ids` except load reports (which expire by
 * themselves): drain, maint, down and maxconn. For when agent checks are
 * turned off, so a backend an agent once drained does not stay drained.
 */
export function clearAgentState(states: BackendStates, ids: Iterable<string>): void {
  for (const id of ids) {
    const drains = states.drains(id);
    if (drains.includes('agent')) states.setAgentDrain(id, false);
    if (drains.includes('maint')) states.setMaintenance(id, false);
    states.setAgentDown(id, false);
    states.setMaxConn(id, undefined);
  }
}

/** What AgentChecks emits as `reply` after every try that reached an agent or failed to. */
export type AgentEvent =
  | {
      readonly service: string;
      readonly backend: string;
      /** The line as read (without its newline). */
      readonly text: string;
      readonly reply: AgentReply;
    }
  | {
      readonly service: string;
      readonly backend: string;
      /** The line as read, when the agent answered with something unreadable. */
      readonly text?: string;
      /** Why nothing was applied: the agent was unreachable, or its reply invalid. */
      readonly error: Error;
    };

/** One try's outcome, before it is applied. */
type Outcome = { readonly text: string } | { readonly unreachable: Error } | { readonly text: string; readonly invalid: Error };

interface Target {
  readonly id: string;
  readonly host: string;
  timer: NodeJS.Timeout | undefined;
  socket: Socket | undefined;
  /** When the pending timer fires (performance.now()); for reconfigure. */
  due: number;
  /** Whether "no agent port" was logged since the member last had one. */
  noPortLogged: boolean;
  /** The last administrative and health words applied, to log changes once. */
  admin: AgentReply['admin'];
  op: AgentReply['op'];
  /** The last reply ignored as invalid, so an agent repeating it warns once. */
  invalid: string | undefined;
}

/**
 * HAProxy's agent-check client for one service: every `interval` (jittered
 * by ±10%, the first try at a random point of the first interval) it
 * connects to each member's agent port (the member's own `agentPort`, else
 * the service's `agent.port`; members with neither are skipped), sends
 * `send`, reads one line (at most 1 KB, until a newline or the agent
 * closes) within `timeout`, and applies it.
 *
 * An unreachable agent (refused, reset, timed out) changes nothing: a dead
 * agent is not a dead backend, and the active checks judge the backend.
 * An invalid reply is ignored as a whole and logged (`agent reply ignored`,
 * at warn; the same reply again right after, at debug).
 * Emits `reply` ({@link AgentEvent}) after each try. Never throws into the
 * event loop.
 */
export class AgentChecks extends EventEmitter {
  private readonly targets = new Map<string, Target>();
  private running = false;

  constructor(
    readonly service: string,
    private config: AgentConfig,
    private readonly balancer: ServiceBalancer,
    private readonly log: Logger,
    private readonly random: () => number = Math.random,
  ) {
    super();
  }

  /** Starts polling; call sync() after every member change. */
  start(): void {
    this.running = true;
    this.sync();
  }

  /** Starts polling new members and stops removed ones. */
  sync(): void {
    if (!this.running) return;
    const current = new Map(this.balancer.backends.map((b) => [b.id, b]));
    for (const [id, t] of this.targets) {
      if (current.has(id)) continue;
      this.cancel(t);
      this.targets.delete(id);
    }
    for (const b of current.values()) {
      if (this.targets.has(b.id)) continue;
      const t: Target = { id: b.id, host: b.host, timer: undefined, socket: undefined, due: 0, noPortLogged: false, admin: undefined, op: undefined, invalid: undefined };
      this.targets.set(b.id, t);
      this.schedule(t, this.jitter(0, 1));
    }
  }

  /**
   * New settings (reload): port, send and timeout apply from each member's
   * next try. A waiting member whose next try is further off than the new
   * interval allows is rescheduled within it.
   */
  reconfigure(config: AgentConfig): void {
    const shorter = config.interval < this.config.interval;
    this.config = config;
    if (!shorter || !this.running) return;
    const now = performance.now();
    for (const t of this.targets.values()) {
      if (t.timer && t.due - now > config.interval * 1.1) {
        clearTimeout(t.timer);
        this.schedule(t, this.jitter(0, 1));
      }
    }
  }

  /** Stops every timer and open connection. */
  stop(): void {
    this.running = false;
    for (const t of this.targets.values()) this.cancel(t);
    this.targets.clear();
  }

  /** A delay of interval × [lo, lo + span). */
  private jitter(lo: number, span: number): number {
    let r = Number(this.random());
    if (!(r >= 0 && r < 1)) r = 0.5;
    return this.config.interval * (lo + span * r);
  }

  private schedule(t: Target, delay: number): void {
    t.due = performance.now() + delay;
    t.timer = setTimeout(() => void this.tick(t), Math.max(0, delay));
  }

  private cancel(t: Target): void {
    clearTimeout(t.timer);
    t.timer = undefined;
    t.socket?.destroy();
    t.socket = undefined;
  }

  /** Whether `t` is still followed (not stopped, not removed). */
  private live(t: Target): boolean {
    return this.running && this.targets.get(t.id) === t;
  }

  private async tick(t: Target): Promise<void> {
    t.timer = undefined;
    const started = performance.now();
    try {
      await this.check(t);
    } catch (err) {
      // A bug here must not stop the checks or reach the event loop.
      this.log.error('agent check failed unexpectedly', { service: this.service, backend: t.id, error: err });
    }
    if (!this.live(t)) return;
    this.schedule(t, Math.max(0, started + this.jitter(0.9, 0.2) - performance.now()));
  }

  private async check(t: Target): Promise<void> {
    const port = this.balancer.agentPort(t.id) ?? this.config.port;
    if (port === undefined) {
      if (!t.noPortLogged) this.log.debug('agent check skipped: no agent port', { service: this.service, backend: t.id });
      t.noPortLogged = true;
      return;
    }
    t.noPortLogged = false;
    const outcome = await this.exchange(t, port);
    if (!this.live(t)) return;
    const base = { service: this.service, backend: t.id };
    if ('unreachable' in outcome) {
      this.log.debug('agent unreachable: nothing changed', { ...base, port, error: outcome.unreachable });
      return this.report({ ...base, error: outcome.unreachable });
    }
    const parsed = 'invalid' in outcome ? outcome.invalid : parseAgentReply(outcome.text);
    if (parsed instanceof Error) {
      // Warn once per distinct bad reply: an agent stuck on one would otherwise warn every interval.
      const level = t.invalid === outcome.text ? 'debug' : 'warn';
      t.invalid = outcome.text;
      this.log[level]('agent reply ignored', { ...base, port, reply: shorten(outcome.text), reason: parsed.message });
      return this.report({ ...base, text: outcome.text, error: parsed });
    }
    t.invalid = undefined;
    applyAgentReply(this.balancer.states, t.id, parsed);
    this.logChanges(t, parsed);
    this.report({ ...base, text: outcome.text, reply: parsed });
  }

  private report(event: AgentEvent): void {
    try {
      this.emit('reply', event);
    } catch (err) {
      this.log.error('agent reply listener failed', { service: this.service, backend: event.backend, error: err });
    }
  }

  /**
   * Logs administrative and health changes at info, once per change (a first
   * `ready` or `up` is no change: it is where every backend starts); the rest at debug.
   */
  private logChanges(t: Target, reply: AgentReply): void {
    const fields = { service: this.service, backend: t.id };
    const adminChanged = reply.admin !== undefined && reply.admin !== (t.admin ?? 'ready');
    const opChanged = reply.op !== undefined && reply.op !== (t.op ?? 'up');
    if (reply.admin !== undefined) t.admin = reply.admin;
    if (reply.op !== undefined) t.op = reply.op;
    if (adminChanged || opChanged) {
      this.log.info('agent changed backend state', { ...fields, ...(adminChanged ? { admin: reply.admin } : {}), ...(opChanged ? { op: reply.op } : {}), ...(reply.reason ? { reason: reply.reason } : {}) });
    } else if (this.log.enabled('debug')) {
      this.log.debug('agent reply', { ...fields, reply });
    }
  }

  /** Connects, sends, reads one line; resolves with what happened, never rejects. */
  private exchange(t: Target, port: number): Promise<Outcome> {
    const { send, timeout } = this.config;
    return new Promise<Outcome>((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      let socket: Socket;
      const finish = (outcome: Outcome) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        socket?.destroy();
        if (t.socket === socket) t.socket = undefined;
        resolve(outcome);
      };
      const text = () => Buffer.concat(chunks).toString('utf8');
      const timer = setTimeout(() => finish({ unreachable: new Error(`no reply within ${timeout} ms`) }), timeout);
      try {
        socket = connect({ host: t.host, port });
      } catch (err) {
        return finish({ unreachable: err instanceof Error ? err : new Error(String(err)) });
      }
      t.socket = socket;
      socket.setNoDelay(true);
      socket.on('connect', () => {
        if (send) socket.write(send.endsWith('\n') ? send : `${send}\n`);
      });
      socket.on('data', (chunk: Buffer) => {
        const nl = chunk.indexOf(10);
        const part = nl >= 0 ? chunk.subarray(0, nl) : chunk;
        chunks.push(part);
        size += part.length;
        if (size > MAX_REPLY_BYTES) {
          const head = Buffer.concat(chunks).subarray(0, 100).toString('utf8');
          return finish({ text: head, invalid: new Error(`reply longer than ${MAX_REPLY_BYTES} bytes`) });
        }
        if (nl >= 0) finish({ text: text() });
      });
      // As HAProxy: a line the agent closed before its newline may be cut
      // short (`maxconn:10` of `maxconn:1000`), so it is not applied.
      socket.on('end', () =>
        finish(size === 0 ? { unreachable: new Error('closed without a reply') } : { text: text(), invalid: new Error('incomplete line: closed before its newline') }),
      );
      socket.on('error', (err) => finish({ unreachable: err }));
      socket.on('close', () => finish({ unreachable: new Error('connection closed') }));
    });
  }
}

/** A whole number 0..max from digits only; undefined otherwise. */
function whole(digits: string, max: number): number | undefined {
  if (!/^\d{1,10}$/.test(digits)) return undefined;
  const n = Number(digits);
  return n <= max ? n : undefined;
}

/** A word as JSON, cut short, so junk shows escaped and cannot flood the log. */
function preview(word: string): string {
  const text = JSON.stringify(word.length > 40 ? `${word.slice(0, 37)}...` : word);
  return text;
}

function shorten(text: string): string {
  return text.length > 200 ? `${text.slice(0, 197)}...` : text;
}
