import diagnosticsChannel from 'node:diagnostics_channel';
import type { TypeUrl } from './proto.js';
import type { StreamKind, XdsNackRecord } from './status.js';

/**
 * `node:diagnostics_channel` hooks. Publishing to a channel nobody subscribes to costs a property check,
 * so these stay on in production; tests and tracing subscribe by name.
 */
export const XdsChannelName = {
  Send: 'skein:xds:send',
  Ack: 'skein:xds:ack',
  Nack: 'skein:xds:nack',
} as const;

/** A response written to a stream. */
export interface XdsSendEvent {
  readonly streamId: number;
  readonly kind: StreamKind;
  readonly nodeId: string;
  readonly group: string;
  readonly typeUrl: TypeUrl;
  readonly type: string;
  readonly nonce: string;
  readonly version: string;
  /** Names of the resources in the response (SotW: the full set; delta: added or changed). */
  readonly resources: readonly string[];
  /** Delta only: names in removed_resources. */
  readonly removed: readonly string[];
  readonly bytes: number;
}

/** A response the client accepted. */
export interface XdsAckEvent {
  readonly streamId: number;
  readonly nodeId: string;
  readonly group: string;
  readonly typeUrl: TypeUrl;
  readonly type: string;
  readonly nonce: string;
  readonly version: string;
}

export type XdsNackEvent = XdsNackRecord;

export const sendChannel = diagnosticsChannel.channel(XdsChannelName.Send);
export const ackChannel = diagnosticsChannel.channel(XdsChannelName.Ack);
export const nackChannel = diagnosticsChannel.channel(XdsChannelName.Nack);
