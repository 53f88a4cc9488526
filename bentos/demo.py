"""``make demo``'s last step: serve the production model, ask it for recommendations, print them."""

from __future__ import annotations

import os
import time

import httpx
import pandas as pd

from bentos import server
from bentos.guard import API_KEY_ENV_VAR
from vidrec.config import Paths, resolve_data, resolve_root
from vidrec.sources import read_events


def main() -> None:
    root = resolve_root()
    paths = Paths(root)
    port = server.free_port()
    print(f"starting the BentoML service on 127.0.0.1:{port} …", flush=True)
    process = server.start(port, {}, log_path=paths.reports / "demo_server.log")
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"X-API-Key": os.environ[API_KEY_ENV_VAR]} if os.environ.get(API_KEY_ENV_VAR) else {}
        info = httpx.get(f"{base}/model", headers=headers, timeout=30).json()
        print(
            f"\nproduction model: {info['tag']}  (data {info['labels'].get('data_version')}, "
            f"commit {info['labels'].get('git_commit')})\n"
        )
        print("hold-out evaluation (DuckDB):")
        print(pd.DataFrame(info["evaluation"]).round(4).to_string(index=False))
        events = read_events(resolve_data())
        users = events.loc[events["clicked"], "user_id"].value_counts().index[:3].tolist() + ["someone-new"]
        for user in users:
            started = time.perf_counter()
            reply = httpx.post(f"{base}/recommend", json={"user_id": user, "k": 5}, headers=headers, timeout=30)
            reply.raise_for_status()
            body = reply.json()
            ms = (time.perf_counter() - started) * 1000
            print(
                f"\nuser {user} ({'known' if body['known_user'] else 'unknown: content-only cold start'}, {ms:.0f} ms)"
            )
            recent = [h["title"] for h in body["history"][-3:]]
            print("  recently watched: " + ("; ".join(recent) if recent else "—"))
            for rank, item in enumerate(body["items"], 1):
                print(
                    f"  {rank}. {item['title'][:48]:48s} [{item['category']}] score={item['score']:.3f} "
                    f"p_click={item['p_click']:.3f} watch={item['expected_watch_s']:.1f}s "
                    f"p_conv={item['p_conversion']:.4f}"
                )
    finally:
        server.stop(process)
        print("\nservice stopped.")


if __name__ == "__main__":
    main()
