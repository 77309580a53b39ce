from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Box(_message.Message):
    __slots__ = ("x_min", "y_min", "x_max", "y_max")
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class EstimateRequest(_message.Message):
    __slots__ = ("image", "box", "category", "request_id", "frame_id")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    box: Box
    category: str
    request_id: str
    frame_id: int
    def __init__(self, image: _Optional[bytes] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., category: _Optional[str] = ..., request_id: _Optional[str] = ..., frame_id: _Optional[int] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("name", "score")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class Quaternion(_message.Message):
    __slots__ = ("w", "x", "y", "z")
    W_FIELD_NUMBER: _ClassVar[int]
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    w: float
    x: float
    y: float
    z: float
    def __init__(self, w: _Optional[float] = ..., x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class Viewpoint(_message.Message):
    __slots__ = ("azimuth", "elevation", "theta")
    AZIMUTH_FIELD_NUMBER: _ClassVar[int]
    ELEVATION_FIELD_NUMBER: _ClassVar[int]
    THETA_FIELD_NUMBER: _ClassVar[int]
    azimuth: float
    elevation: float
    theta: float
    def __init__(self, azimuth: _Optional[float] = ..., elevation: _Optional[float] = ..., theta: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode_ms", "preprocess_ms", "inference_ms", "total_ms", "backend")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    total_ms: float
    backend: str
    def __init__(self, decode_ms: _Optional[float] = ..., preprocess_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., backend: _Optional[str] = ...) -> None: ...

class EstimateResponse(_message.Message):
    __slots__ = ("category", "category_scores", "rotation", "axis_angle", "quaternion", "viewpoint", "timings", "request_id", "frame_id", "category_given", "error", "error_code")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_SCORES_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    AXIS_ANGLE_FIELD_NUMBER: _ClassVar[int]
    QUATERNION_FIELD_NUMBER: _ClassVar[int]
    VIEWPOINT_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_GIVEN_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    category: str
    category_scores: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    rotation: _containers.RepeatedScalarFieldContainer[float]
    axis_angle: _containers.RepeatedScalarFieldContainer[float]
    quaternion: Quaternion
    viewpoint: Viewpoint
    timings: Timings
    request_id: str
    frame_id: int
    category_given: bool
    error: str
    error_code: int
    def __init__(self, category: _Optional[str] = ..., category_scores: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., rotation: _Optional[_Iterable[float]] = ..., axis_angle: _Optional[_Iterable[float]] = ..., quaternion: _Optional[_Union[Quaternion, _Mapping]] = ..., viewpoint: _Optional[_Union[Viewpoint, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., request_id: _Optional[str] = ..., frame_id: _Optional[int] = ..., category_given: _Optional[bool] = ..., error: _Optional[str] = ..., error_code: _Optional[int] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "model_version", "categories", "input_size", "fusion", "backend", "metadata_json", "server_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_version: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    input_size: int
    fusion: str
    backend: str
    metadata_json: str
    server_version: str
    def __init__(self, name: _Optional[str] = ..., model_version: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., input_size: _Optional[int] = ..., fusion: _Optional[str] = ..., backend: _Optional[str] = ..., metadata_json: _Optional[str] = ..., server_version: _Optional[str] = ...) -> None: ...
