/** The client side of the local API: a connection to the node's daemon over its Unix socket. */
export { CONNECT_TIMEOUT_MS_DEFAULT, SOCKET_ENV, ClientConnection, ClientStream, connectLocal, type CallOptions, type ConnectOptions } from './client-connection.js';
export { CohortClientError, type ClientErrorCode, type ClientOwnErrorCode } from './client-error.js';
export type { ApiData } from '../api/index.js';
