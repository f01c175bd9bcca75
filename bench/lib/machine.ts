/** What the numbers were measured on: recorded with every result. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { ROOT } from './procs.js';

/** The machine, the software versions and the load on the machine when the run started. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  autocannon: string;
  haproxy?: string;
  nginx?: string;
  /** The commit of the code measured (with "+dirty" when the work tree had changes). */
  commit: string;
  /** 1, 5 and 15-minute load averages when the run started (other work on a shared machine). */
  loadAverageAtStart: number[];
}

/** What a command printed on stdout and stderr together (nginx -v writes to stderr). */
function quiet(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
  if (r.error) return undefined;
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || undefined;
}

/** Reads the machine description; `haproxy` and `nginx` are the binaries found (if any). */
export function machineInfo(binaries: { haproxy?: string; nginx?: string }): MachineInfo {
  const list = cpus();
  let model = list[0]?.model?.trim() ?? 'unknown';
  try {
    // Some virtual machines report a short model name; /proc/cpuinfo may say more.
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m && m[1]!.trim().length > model.length) model = m[1]!.trim();
  } catch {
    /* not Linux */
  }
  const autocannonVersion = (JSON.parse(readFileSync(`${ROOT}node_modules/autocannon/package.json`, 'utf8')) as { version: string }).version;
  const haproxy = binaries.haproxy ? /version (\S+)/.exec(quiet(binaries.haproxy, ['-v']) ?? '')?.[1] : undefined;
  const nginx = binaries.nginx ? /nginx\/(\S+)/.exec(quiet(binaries.nginx, ['-v']) ?? '')?.[1] : undefined;
  const head = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', cwd: ROOT }).stdout?.trim() || 'unknown';
  const dirty = (spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', cwd: ROOT }).stdout ?? '').trim().length > 0;
  return {
    cpuModel: model,
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `Linux ${release()}`,
    node: process.version,
    autocannon: autocannonVersion,
    ...(haproxy ? { haproxy } : {}),
    ...(nginx ? { nginx } : {}),
    commit: head + (dirty ? '+dirty' : ''),
    loadAverageAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

/** One line: "AMD EPYC, 2 cores, 23 GiB, Linux 6.1, Node v20.20.2". */
export function machineLine(m: MachineInfo): string {
  const peers = [m.haproxy ? `HAProxy ${m.haproxy}` : undefined, m.nginx ? `nginx ${m.nginx}` : undefined].filter(Boolean).join(', ');
  return `${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, Node ${m.node}, autocannon ${m.autocannon}${peers ? `, ${peers}` : ''}; load average at start ${m.loadAverageAtStart.join(' / ')}`;
}
