"""The columns that describe one diagnosis, in the order every listing, export and sync uses.

One place, so a column added to the store cannot be forgotten by the CSV, the sync protocol or
the collector's table. (Part of the wire package: the collector reads it without the device's code.)
"""

DIAGNOSIS_COLUMNS = (
    "id",
    "created_at",
    "device_id",
    "model_version",
    "model_sha256",
    "verdict",
    "reason",
    "top1_slug",
    "top1_probability",
    "crop",
    "condition",
    "crops",  # the crops the diagnosis chose among, a JSON list of crop keys; [] = every crop the model knew
    "topk",
    "quality",
    "latency",
)
PHOTO_COLUMNS = ("photo_sha256", "photo_bytes")
JSON_COLUMNS = ("crops", "topk", "quality", "latency")  # stored as JSON text
