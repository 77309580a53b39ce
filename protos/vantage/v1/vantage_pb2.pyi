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

class Camera(_message.Message):
    __slots__ = ("fx", "fy", "cx", "cy")
    FX_FIELD_NUMBER: _ClassVar[int]
    FY_FIELD_NUMBER: _ClassVar[int]
    CX_FIELD_NUMBER: _ClassVar[int]
    CY_FIELD_NUMBER: _ClassVar[int]
    fx: float
    fy: float
    cx: float
    cy: float
    def __init__(self, fx: _Optional[float] = ..., fy: _Optional[float] = ..., cx: _Optional[float] = ..., cy: _Optional[float] = ...) -> None: ...

class Vector3(_message.Message):
    __slots__ = ("x", "y", "z")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    z: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class EstimateRequest(_message.Message):
    __slots__ = ("image", "box", "category", "request_id", "frame_id", "keep_frame", "alternatives", "camera", "gravity", "upright", "top_k", "wireframe_models")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_ID_FIELD_NUMBER: _ClassVar[int]
    KEEP_FRAME_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    GRAVITY_FIELD_NUMBER: _ClassVar[int]
    UPRIGHT_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    WIREFRAME_MODELS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    box: Box
    category: str
    request_id: str
    frame_id: int
    keep_frame: bool
    alternatives: int
    camera: Camera
    gravity: Vector3
    upright: bool
    top_k: int
    wireframe_models: int
    def __init__(self, image: _Optional[bytes] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., category: _Optional[str] = ..., request_id: _Optional[str] = ..., frame_id: _Optional[int] = ..., keep_frame: _Optional[bool] = ..., alternatives: _Optional[int] = ..., camera: _Optional[_Union[Camera, _Mapping]] = ..., gravity: _Optional[_Union[Vector3, _Mapping]] = ..., upright: _Optional[bool] = ..., top_k: _Optional[int] = ..., wireframe_models: _Optional[int] = ...) -> None: ...

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

class PoseHypothesis(_message.Message):
    __slots__ = ("rotation", "quaternion", "viewpoint", "score")
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    QUATERNION_FIELD_NUMBER: _ClassVar[int]
    VIEWPOINT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    rotation: _containers.RepeatedScalarFieldContainer[float]
    quaternion: Quaternion
    viewpoint: Viewpoint
    score: float
    def __init__(self, rotation: _Optional[_Iterable[float]] = ..., quaternion: _Optional[_Union[Quaternion, _Mapping]] = ..., viewpoint: _Optional[_Union[Viewpoint, _Mapping]] = ..., score: _Optional[float] = ...) -> None: ...

class Timings(_message.Message):
    __slots__ = ("decode_ms", "preprocess_ms", "inference_ms", "total_ms", "backend", "queue_ms")
    DECODE_MS_FIELD_NUMBER: _ClassVar[int]
    PREPROCESS_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    total_ms: float
    backend: str
    queue_ms: float
    def __init__(self, decode_ms: _Optional[float] = ..., preprocess_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., total_ms: _Optional[float] = ..., backend: _Optional[str] = ..., queue_ms: _Optional[float] = ...) -> None: ...

class EstimateResponse(_message.Message):
    __slots__ = ("category", "category_scores", "rotation", "axis_angle", "quaternion", "viewpoint", "timings", "request_id", "frame_id", "category_given", "error", "error_code", "dropped", "frames_dropped_before", "pose_confidence", "alternatives", "retrieval")
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
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    POSE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
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
    dropped: bool
    frames_dropped_before: int
    pose_confidence: float
    alternatives: _containers.RepeatedCompositeFieldContainer[PoseHypothesis]
    retrieval: Retrieval
    def __init__(self, category: _Optional[str] = ..., category_scores: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., rotation: _Optional[_Iterable[float]] = ..., axis_angle: _Optional[_Iterable[float]] = ..., quaternion: _Optional[_Union[Quaternion, _Mapping]] = ..., viewpoint: _Optional[_Union[Viewpoint, _Mapping]] = ..., timings: _Optional[_Union[Timings, _Mapping]] = ..., request_id: _Optional[str] = ..., frame_id: _Optional[int] = ..., category_given: _Optional[bool] = ..., error: _Optional[str] = ..., error_code: _Optional[int] = ..., dropped: _Optional[bool] = ..., frames_dropped_before: _Optional[int] = ..., pose_confidence: _Optional[float] = ..., alternatives: _Optional[_Iterable[_Union[PoseHypothesis, _Mapping]]] = ..., retrieval: _Optional[_Union[Retrieval, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "model_version", "categories", "input_size", "fusion", "backend", "metadata_json", "server_version", "bundle_version", "pose_hypotheses", "confidence_within_deg", "view_index")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    INPUT_SIZE_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_VERSION_FIELD_NUMBER: _ClassVar[int]
    POSE_HYPOTHESES_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_WITHIN_DEG_FIELD_NUMBER: _ClassVar[int]
    VIEW_INDEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    model_version: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    input_size: int
    fusion: str
    backend: str
    metadata_json: str
    server_version: str
    bundle_version: str
    pose_hypotheses: int
    confidence_within_deg: float
    view_index: ViewIndexInfo
    def __init__(self, name: _Optional[str] = ..., model_version: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., input_size: _Optional[int] = ..., fusion: _Optional[str] = ..., backend: _Optional[str] = ..., metadata_json: _Optional[str] = ..., server_version: _Optional[str] = ..., bundle_version: _Optional[str] = ..., pose_hypotheses: _Optional[int] = ..., confidence_within_deg: _Optional[float] = ..., view_index: _Optional[_Union[ViewIndexInfo, _Mapping]] = ...) -> None: ...

class ReloadRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: str
    def __init__(self, version: _Optional[str] = ...) -> None: ...

class ReloadResponse(_message.Message):
    __slots__ = ("model", "changed")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    model: ModelInfo
    changed: bool
    def __init__(self, model: _Optional[_Union[ModelInfo, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class RetrieveRequest(_message.Message):
    __slots__ = ("image", "box", "category", "top_k", "request_id", "wireframe_models")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WIREFRAME_MODELS_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    box: Box
    category: str
    top_k: int
    request_id: str
    wireframe_models: int
    def __init__(self, image: _Optional[bytes] = ..., box: _Optional[_Union[Box, _Mapping]] = ..., category: _Optional[str] = ..., top_k: _Optional[int] = ..., request_id: _Optional[str] = ..., wireframe_models: _Optional[int] = ...) -> None: ...

class RetrievedView(_message.Message):
    __slots__ = ("view_id", "model_id", "category", "viewpoint", "rotation", "similarity", "thumbnail")
    VIEW_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    VIEWPOINT_FIELD_NUMBER: _ClassVar[int]
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    view_id: int
    model_id: str
    category: str
    viewpoint: Viewpoint
    rotation: _containers.RepeatedScalarFieldContainer[float]
    similarity: float
    thumbnail: str
    def __init__(self, view_id: _Optional[int] = ..., model_id: _Optional[str] = ..., category: _Optional[str] = ..., viewpoint: _Optional[_Union[Viewpoint, _Mapping]] = ..., rotation: _Optional[_Iterable[float]] = ..., similarity: _Optional[float] = ..., thumbnail: _Optional[str] = ...) -> None: ...

class RetrievedModel(_message.Message):
    __slots__ = ("model_id", "category", "score", "best_view", "views", "wireframe", "symmetry")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    BEST_VIEW_FIELD_NUMBER: _ClassVar[int]
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    WIREFRAME_FIELD_NUMBER: _ClassVar[int]
    SYMMETRY_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    category: str
    score: float
    best_view: RetrievedView
    views: int
    wireframe: _containers.RepeatedScalarFieldContainer[float]
    symmetry: Symmetry
    def __init__(self, model_id: _Optional[str] = ..., category: _Optional[str] = ..., score: _Optional[float] = ..., best_view: _Optional[_Union[RetrievedView, _Mapping]] = ..., views: _Optional[int] = ..., wireframe: _Optional[_Iterable[float]] = ..., symmetry: _Optional[_Union[Symmetry, _Mapping]] = ...) -> None: ...

class Symmetry(_message.Message):
    __slots__ = ("turns_deg", "continuous")
    TURNS_DEG_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_FIELD_NUMBER: _ClassVar[int]
    turns_deg: _containers.RepeatedScalarFieldContainer[float]
    continuous: bool
    def __init__(self, turns_deg: _Optional[_Iterable[float]] = ..., continuous: _Optional[bool] = ...) -> None: ...

class NeighbourPose(_message.Message):
    __slots__ = ("rotation", "viewpoint", "quaternion", "support", "count", "method")
    ROTATION_FIELD_NUMBER: _ClassVar[int]
    VIEWPOINT_FIELD_NUMBER: _ClassVar[int]
    QUATERNION_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    rotation: _containers.RepeatedScalarFieldContainer[float]
    viewpoint: Viewpoint
    quaternion: Quaternion
    support: float
    count: int
    method: str
    def __init__(self, rotation: _Optional[_Iterable[float]] = ..., viewpoint: _Optional[_Union[Viewpoint, _Mapping]] = ..., quaternion: _Optional[_Union[Quaternion, _Mapping]] = ..., support: _Optional[float] = ..., count: _Optional[int] = ..., method: _Optional[str] = ...) -> None: ...

class Retrieval(_message.Message):
    __slots__ = ("views", "models", "knn_pose", "fused_pose", "search_ms")
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    KNN_POSE_FIELD_NUMBER: _ClassVar[int]
    FUSED_POSE_FIELD_NUMBER: _ClassVar[int]
    SEARCH_MS_FIELD_NUMBER: _ClassVar[int]
    views: _containers.RepeatedCompositeFieldContainer[RetrievedView]
    models: _containers.RepeatedCompositeFieldContainer[RetrievedModel]
    knn_pose: NeighbourPose
    fused_pose: NeighbourPose
    search_ms: float
    def __init__(self, views: _Optional[_Iterable[_Union[RetrievedView, _Mapping]]] = ..., models: _Optional[_Iterable[_Union[RetrievedModel, _Mapping]]] = ..., knn_pose: _Optional[_Union[NeighbourPose, _Mapping]] = ..., fused_pose: _Optional[_Union[NeighbourPose, _Mapping]] = ..., search_ms: _Optional[float] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("retrieval", "estimate", "request_id")
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    retrieval: Retrieval
    estimate: EstimateResponse
    request_id: str
    def __init__(self, retrieval: _Optional[_Union[Retrieval, _Mapping]] = ..., estimate: _Optional[_Union[EstimateResponse, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ViewIndexInfo(_message.Message):
    __slots__ = ("views", "models", "categories", "descriptor", "dim", "wireframes")
    VIEWS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTOR_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    WIREFRAMES_FIELD_NUMBER: _ClassVar[int]
    views: int
    models: int
    categories: _containers.RepeatedScalarFieldContainer[str]
    descriptor: str
    dim: int
    wireframes: int
    def __init__(self, views: _Optional[int] = ..., models: _Optional[int] = ..., categories: _Optional[_Iterable[str]] = ..., descriptor: _Optional[str] = ..., dim: _Optional[int] = ..., wireframes: _Optional[int] = ...) -> None: ...
