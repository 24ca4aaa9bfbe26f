/**
 * The dbaas client, for services written in TypeScript (`import { DbaasClient } from 'dbaas/client'`).
 * See docs/OPERATIONS.md, "Typed client".
 */
export { DbaasClient, DbaasClientError, newRequestId, type CallOptions, type DbaasClientOptions, type WriteOptions } from './dbaas-client.js';
export { CLIENT_TIMEOUT, CLIENT_UNREACHABLE, DEFAULT_RETRY, isRetryable, retryDelayMs, type RetryPolicy } from './retry.js';
export type {
  AuditEvent,
  AuditKind,
  AutoscalerStatus,
  DatabaseInfo,
  Document,
  Filter,
  PlatformService,
  PlatformView,
  ReadOptions,
  Readiness,
  Update,
  WorkerInfo,
  WorkerRole,
  WorkerState,
  WriteBody,
  WriteResult,
} from './types.js';
