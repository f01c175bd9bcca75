import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import type { Member } from '../../src/config/schema.js';
import type { ZooKeeperConnection } from '../../src/discovery/zk.js';
import { ZooKeeperSource } from '../../src/discovery/zookeeper.js';
import { Logger } from '../../src/log.js';

/**
 * A stand-in connection for one race only a fake can stage on demand:
 * node-zookeeper-client runs a watch callback synchronously when a read's
 * reply and the watch event arrive in one TCP chunk, before the awaiting
 * reader resumes. The end-to-end behaviour is covered with a real ZooKeeper
 * in test/zookeeper/.
 */
class RacingConnection extends EventEmitter {
  weight = 1;
  version = 0;
  fireDuringNextRead = false;
  async getChildren(): Promise<string[]> {
    return ['m1'];
  }
  getData(_path: string, watch: () => void): Promise<{ data: Buffer; version: number }> {
    const snapshot = { data: Buffer.from(JSON.stringify({ host: '127.0.0.1', port: 9001, weight: this.weight })), version: this.version };
    return new Promise((resolve) => {
      resolve(snapshot);
      if (this.fireDuringNextRead) {
        this.fireDuringNextRead = false;
        this.weight = 5;
        this.version++;
        watch();
      }
    });
  }
}

describe('zookeeper watcher', () => {
  it('does not lose a change whose watch fires before the read that armed it resumes', { timeout: 5000 }, async () => {
    const zk = new RacingConnection();
    const source = new ZooKeeperSource(zk as unknown as ZooKeeperConnection, { path: '/s', format: 'auto' }, new Logger('error', () => {}), 'web');
    const delivered: Array<readonly Member[]> = [];
    let notify: (() => void) | undefined;
    source.start((m) => {
      delivered.push(m);
      notify?.();
    });
    const until = async (test: () => boolean) => {
      while (!test()) await new Promise<void>((r) => (notify = r));
    };
    try {
      await until(() => delivered.length >= 1);
      assert.equal(delivered.at(-1)![0]!.weight, 1);
      zk.fireDuringNextRead = true;
      // First watch: the node changed. Its re-read's reply comes with the next change's event.
      zk.weight = 3;
      zk.version++;
      zk.emit('session');
      await until(() => delivered.at(-1)![0]!.weight === 5);
      assert.equal(delivered.at(-1)![0]!.weight, 5);
    } finally {
      await source.stop();
    }
  });
});
