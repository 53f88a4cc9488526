"""What /events and /videos check and land beyond their schemas: feedback must name a slate the service issued
to that user, and an upload's landed record and answer are built from what processing found."""

from __future__ import annotations

from bentoml.exceptions import InvalidArgument

from bentos import schemas as s
from bentos.search import parse_recognised
from bentos.uploads import ProcessedUpload
from vidrec.impressions import RequestIdError, verify_request_id
from vidrec.privacy import pseudonymise
from vidrec.text import normalise_text


def check_slates(key: str, events: list[s.Event]) -> None:
    """400 for feedback naming a request the service never issued to that user, or a video its slate
    did not show: such a row could never join its impression."""
    for index, event in enumerate(events):
        if event.request_id is None:
            continue
        try:
            issued = verify_request_id(key, pseudonymise(event.user_id, key), event.request_id)
        except RequestIdError as error:
            raise InvalidArgument(f"event {index}: {error}") from None
        if issued.position_of(event.video_id) is None:
            raise InvalidArgument(
                f"event {index}: video_id {event.video_id!r} was not in the slate of its request_id "
                "(send feedback only on the videos that response showed)"
            )


def landing_record(metadata: dict, processed: ProcessedUpload, uploaded_at: float) -> dict:
    """The upload's landed record (``vidrec.landing.land_upload``): the form's metadata and what processing
    found, including the tags recognised at upload time and where their frame features are cached."""
    return {
        **metadata,
        "sha256": processed.sha256,
        "shard": str(processed.shard),
        "duration_s": processed.duration_s,
        "has_audio": processed.has_audio,
        "uploaded_at": uploaded_at,
        "recognised": processed.recognised,
        "frame_features_path": processed.frame_features_path,
    }


def upload_response(
    metadata: dict, processed: ProcessedUpload, created: bool, model_tag: str, seconds: float
) -> s.UploadResponse:
    text = f"{metadata['title']} {metadata['description']} {' '.join(metadata['tags'])}"
    return s.UploadResponse(
        video_id=processed.video_id,
        created=created,
        model_tag=model_tag,
        duration_s=processed.duration_s,
        has_audio=processed.has_audio,
        has_text=bool(normalise_text(text)),
        tags=parse_recognised(processed.recognised),
        processing_s=round(seconds, 3),
    )
