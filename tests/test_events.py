"""Event types are defined once (app.events): every one goes from the feedback API through
the stream and the archive into retraining's cleaning, as its definition says."""

from __future__ import annotations

import asyncio

import pandas as pd

from app import events
from app.events import EVENT_TYPES, Event
from models import archive
from models.config import CleaningConfig, TrainConfig
from models.data import Dataset, clean
from models.retrain import RetrainOptions, archive_feedback, feedback_interactions

NO_MIN = {"min_user_interactions": 1, "min_item_interactions": 1}


def test_training_reads_its_event_definitions_from_app_events():
    config = CleaningConfig()
    assert config.event_weights == {e.value: t.weight for e, t in EVENT_TYPES.items() if t.training_signal}
    assert config.rating_threshold == events.RATING_THRESHOLD
    assert TrainConfig().cleaning.event_weights["purchase"] == EVENT_TYPES[Event.purchase].weight


async def test_every_event_type_from_the_api_to_the_archive_to_cleaning(client, redis_url, prefix, tmp_path):
    # One item per event type (a rating of 5, above the threshold), and a low rating; all
    # attributed to a list served in an experiment.
    await client.put(
        "/v1/admin/experiments/e2e", json={"variants": {"control": {"share": 1}, "b": {"share": 1}}}
    )
    await client.post("/v1/admin/experiments/e2e/start")
    served = (await client.get("/v1/users/e2e/recommendations")).json()
    rid = served["recommendation_id"]
    sent = [
        {"user_id": "e2e", "item_id": f"item-{e.value}", "event": e.value, "event_id": f"e2e-{e.value}",
         "recommendation_id": rid, "position": n}
        | ({"value": 5} if e == Event.rating else {})
        for n, e in enumerate(Event)
    ]  # fmt: skip
    sent.append(
        {"user_id": "e2e", "item_id": "item-low", "event": "rating", "value": 2, "event_id": "e2e-low"}
    )
    answer = await client.post("/v1/feedback/batch", json={"events": sent})
    assert answer.status_code == 202, answer.text

    options = RetrainOptions(artifacts_dir=tmp_path, archive_dir=tmp_path / "archive", redis_url=redis_url,
                             redis_prefix=prefix)  # fmt: skip
    read, _ = await asyncio.to_thread(archive_feedback, options, {}, log=lambda m: None)
    assert sorted(e["event"] for e in read) == sorted(e["event"] for e in sent)
    archived = feedback_interactions(options.archive_dir)
    assert sorted(archived["event"]) == sorted(e["event"] for e in sent)  # every type is archived
    rows = archive.read(options.archive_dir).set_index("event_id")
    for event in sent[:-1]:  # with its list, position, experiment, variant and list version
        row = rows.loc[event["event_id"]]
        assert row["recommendation_id"] == rid and row["position"] == event["position"]
        assert (row["experiment_id"], row["variant"]) == ("e2e", served["variant"])
        assert row["list_version"] == served["model_version"]
    assert rows.loc["e2e-low", "recommendation_id"] == ""

    cleaned = clean(Dataset(interactions=archived, items=pd.DataFrame()), CleaningConfig(**NO_MIN))
    weights = dict(zip(cleaned.interactions["item_id"], cleaned.interactions["weight"], strict=True))
    for event, definition in EVENT_TYPES.items():
        item = f"item-{event.value}"
        if definition.training_signal:
            assert weights[item] == definition.weight, event
        else:  # archived, never an interaction, and cleaning does not fail on it
            assert item not in weights, event
    assert "item-low" not in weights
    skipped = sum(1 for t in EVENT_TYPES.values() if not t.training_signal)
    assert cleaned.dropped["not_training_signal"] == skipped >= 1
    assert cleaned.dropped["rating_below_threshold"] == 1


def test_a_log_of_impressions_alone_does_not_fail_on_the_event_name():
    frame = pd.DataFrame(
        {
            "user_id": ["u", "u", "u"],
            "item_id": ["a", "b", "c"],
            "event": ["impression", "view", "impression"],
            "value": [float("nan")] * 3,
            "timestamp": [1.0, 2.0, 3.0],
        }
    )
    cleaned = clean(Dataset(interactions=frame, items=pd.DataFrame()), CleaningConfig(**NO_MIN))
    assert cleaned.interactions["item_id"].tolist() == ["b"]
    assert cleaned.dropped["not_training_signal"] == 2


def test_an_archive_written_before_attribution_reads_with_empty_fields(tmp_path):
    when = {"timestamp": "1.8e9", "received_at": "1.8e9", "model_version": "v0"}
    old = [{"event_id": "old-1", "user_id": "u", "item_id": "a", "event": "view", "value": "", **when,
            "stream": "s", "stream_id": "1-0"}]  # fmt: skip
    old_dir = tmp_path / "date=2027-01-15"
    old_dir.mkdir()
    pd.DataFrame(old).to_parquet(old_dir / "s-1-0-1-0.parquet", index=False)
    new = {**old[0], "event_id": "new-1", "stream_id": "2-0", "recommendation_id": "r", "position": "3"}
    archive.write([new], tmp_path)
    frame = archive.read(tmp_path).set_index("event_id")
    assert list(frame.columns) == [c for c in archive.COLUMNS if c != "event_id"]
    assert frame.loc["new-1", "position"] == 3 and pd.isna(frame.loc["old-1", "position"])
    assert pd.isna(frame.loc["old-1", "recommendation_id"])
