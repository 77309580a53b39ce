"""Vantage public gRPC API, version 1 (package `vantage.v1`).

`vantage.proto` is the source of truth (mobile clients compile it); `vantage_pb2`,
`vantage_pb2.pyi` and `vantage_pb2_grpc` are generated from it by
`protos/generate.py` and must not be edited by hand. Importing them needs only
protobuf and grpcio.
"""
