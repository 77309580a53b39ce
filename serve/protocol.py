"""What server and client agree on besides the generated stubs: names, limits, request building.

Needs only grpcio and protobuf (no ONNX Runtime), so clients import it cheaply.
"""

from __future__ import annotations

from typing import Sequence

from vantage.v1 import vantage_pb2

SERVICE_NAME: str = vantage_pb2.DESCRIPTOR.services_by_name["PoseEstimator"].full_name  # "vantage.v1.PoseEstimator"
DEFAULT_PORT = 50051
# gRPC's default of 4 MiB is too small for full-resolution phone photos.
DEFAULT_MAX_MESSAGE_BYTES = 32 * 1024 * 1024


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Message-size options shared by the server and the client channel."""
    return [
        ("grpc.max_receive_message_length", int(max_message_bytes)),
        ("grpc.max_send_message_length", int(max_message_bytes)),
    ]


def make_request(
    image: bytes,
    box: Sequence[float] | None = None,
    category: str | None = None,
    request_id: str = "",
    frame_id: int = 0,
    keep_frame: bool = False,
    alternatives: int = 0,
    camera: Sequence[float] | None = None,
    gravity: Sequence[float] | None = None,
    upright: bool = False,
) -> vantage_pb2.EstimateRequest:
    """EstimateRequest from encoded image bytes, an optional (x_min, y_min, x_max, y_max) box in pixels
    and an optional known category name; `keep_frame` asks a stream never to drop this frame as stale;
    `alternatives` asks for that many alternative poses besides the answer; `camera` (fx, fy, cx, cy),
    the intrinsics in pixels of the image, turns the pose to the camera's optical axis; `gravity`
    (x, y, z in the camera's axes) levels the crop, and `upright` stands the object against it."""
    if alternatives < 0:
        raise ValueError(f"alternatives must be 0 or more, got {alternatives}")
    request = vantage_pb2.EstimateRequest(
        image=image, category=category or "", request_id=request_id, frame_id=int(frame_id), keep_frame=keep_frame,
        alternatives=int(alternatives),
    )
    if box is not None:
        if len(box) != 4:
            raise ValueError(f"box must have 4 numbers (x_min, y_min, x_max, y_max), got {len(box)}")
        x0, y0, x1, y1 = (float(v) for v in box)
        request.box.CopyFrom(vantage_pb2.Box(x_min=x0, y_min=y0, x_max=x1, y_max=y1))
    if camera is not None:
        if len(camera) != 4:
            raise ValueError(f"camera must have 4 numbers (fx, fy, cx, cy), got {len(camera)}")
        fx, fy, cx, cy = (float(v) for v in camera)
        request.camera.CopyFrom(vantage_pb2.Camera(fx=fx, fy=fy, cx=cx, cy=cy))
    if gravity is not None:
        if len(gravity) != 3:
            raise ValueError(f"gravity must have 3 numbers (x, y, z in the camera's axes), got {len(gravity)}")
        x, y, z = (float(v) for v in gravity)
        request.gravity.CopyFrom(vantage_pb2.Vector3(x=x, y=y, z=z))
    request.upright = bool(upright)
    return request


def make_retrieve_request(
    image: bytes, box: Sequence[float] | None = None, category: str | None = None, top_k: int = 0, request_id: str = ""
) -> vantage_pb2.RetrieveRequest:
    """RetrieveRequest with the same image, box and category rules as `make_request`
    (top_k 0 = the server's default)."""
    base = make_request(image, box, category, request_id)
    request = vantage_pb2.RetrieveRequest(image=image, category=base.category, top_k=top_k, request_id=request_id)
    if base.HasField("box"):
        request.box.CopyFrom(base.box)
    return request


def request_box(request: vantage_pb2.EstimateRequest) -> tuple[float, float, float, float] | None:
    """The request's box as a tuple, None when the field is absent (= whole image)."""
    if not request.HasField("box"):
        return None
    b = request.box
    return (b.x_min, b.y_min, b.x_max, b.y_max)


def request_camera(request: vantage_pb2.EstimateRequest) -> tuple[float, float, float, float] | None:
    """The request's camera intrinsics (fx, fy, cx, cy), None when the field is absent."""
    if not request.HasField("camera"):
        return None
    c = request.camera
    return (c.fx, c.fy, c.cx, c.cy)


def request_gravity(request: vantage_pb2.EstimateRequest) -> tuple[float, float, float] | None:
    """The request's gravity direction (x, y, z), None when the field is absent."""
    if not request.HasField("gravity"):
        return None
    g = request.gravity
    return (g.x, g.y, g.z)
