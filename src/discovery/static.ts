import type { Member } from '../config/schema.js';
import type { MemberSource } from './source.js';

/** Members listed in the config's `static:` key: delivered once, on start. */
export class StaticSource implements MemberSource {
  constructor(private readonly members: readonly Member[]) {}

  start(onMembers: (members: readonly Member[]) => void): void {
    onMembers(this.members);
  }

  async stop(): Promise<void> {}
}
