import type { HttpEngineName, HttpListenerConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { Listener, ServiceEntry } from '../listener.js';
import { HttpProxyListener } from './http-proxy.js';
import { NativeHttpListener } from './native/listener.js';
import { loadParser, type ParserBinding, type ParserSource } from './native/parser.js';

/**
 * Picks the engine of each HTTP listener: `native` (the default) unless the
 * config asks for `http-proxy`, or Node's parser is not there or not as
 * expected, in which case every HTTP listener runs on http-proxy and one
 * warning says why. The parser is checked once, on the first listener.
 */
export class HttpEngines {
  private parser: ParserBinding | Error | undefined;
  private warned = false;

  constructor(
    private readonly log: Logger,
    /** Where Node's parser comes from; tests replace it to force the fallback. */
    private readonly source?: ParserSource,
  ) {}

  /** A listener for `config` on the engine it asks for, or the fallback. */
  listener(config: HttpListenerConfig, services: ReadonlyMap<string, ServiceEntry>): Listener & { readonly engine: HttpEngineName } {
    if (config.engine !== 'http-proxy') {
      this.parser ??= loadParser(this.source);
      if (!(this.parser instanceof Error)) return new NativeHttpListener(config, services, this.log, this.parser);
      if (!this.warned) {
        this.warned = true;
        this.log.warn('native HTTP engine unavailable: HTTP listeners use the http-proxy engine', { reason: this.parser.message });
      }
    }
    return new HttpProxyListener(config, services, this.log);
  }
}
