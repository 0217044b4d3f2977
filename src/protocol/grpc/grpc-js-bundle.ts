// Entry of dist/grpc-js.js: @grpc/grpc-js as a bundle of its own, so the daemon's bundle does
// not carry it (see server.ts, loadGrpcJs).
export * from '@grpc/grpc-js';
