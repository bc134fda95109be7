"""Generated files on S3 (verification packages, exports): put, get, presign."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

from chalicelib.settings import Settings


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    metadata: dict[str, str]


class S3Artifacts:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: Any = None

    def _s3(self) -> Any:
        if self._client is None:
            import boto3

            from chalicelib.adapters.faults import client_config

            # SigV4 presigned URLs (SigV2 is refused by buckets in newer regions).
            self._client = boto3.client("s3", region_name=self._settings.region,
                                        config=client_config(self._settings, signature_version="s3v4"))
        return self._client

    def put(self, key: str, body: bytes | IO[bytes], *, content_type: str,
            metadata: dict[str, str] | None = None) -> None:
        """Bytes in one request; a file in parts (multipart upload), never wholly in memory."""
        extra = {"ContentType": content_type, "Metadata": metadata or {}, "ServerSideEncryption": "AES256"}
        if isinstance(body, bytes):
            self._s3().put_object(Bucket=self._settings.bucket, Key=key, Body=body, **extra)
        else:
            self._s3().upload_fileobj(body, self._settings.bucket, key, ExtraArgs=extra)

    def delete(self, key: str) -> None:
        self._s3().delete_object(Bucket=self._settings.bucket, Key=key)

    def get(self, key: str) -> StoredObject | None:
        s3 = self._s3()
        try:
            answer = s3.get_object(Bucket=self._settings.bucket, Key=key)
        except s3.exceptions.NoSuchKey:
            return None
        return StoredObject(answer["Body"].read(), dict(answer.get("Metadata") or {}))

    def presign(self, key: str, *, expires_in: int, filename: str) -> str:
        """A time-limited download URL (for bodies too large for a Lambda response)."""
        return self._s3().generate_presigned_url("get_object", ExpiresIn=expires_in, Params={
            "Bucket": self._settings.bucket, "Key": key,
            "ResponseContentDisposition": f'attachment; filename="{filename}"'})
