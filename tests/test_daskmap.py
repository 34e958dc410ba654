"""nbchat.map over a Dask DataFrame, on a dask.distributed LocalCluster of two worker processes
against the loopback server: lazy, the key never in the task graph, the concurrency shared."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest

import nbchat
from nbchat.conversation.daskmap import is_dask_frame, partition_concurrency
from tests.loopserver import LoopServer

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

DRIVER_KEY = "sk-driver-0123456789SECRET"
WORKER_KEY = "sk-worker-0123456789SECRET"


@pytest.fixture(scope="module")
def cluster():
    # The workers are processes started now: OPENAI_API_KEY is theirs from their environment.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", WORKER_KEY)
        patch.setenv("NBCHAT_STORE", "off")
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
    client = distributed.Client(local)
    yield client
    client.close()
    local.close()


@pytest.fixture
def server():
    with LoopServer(latency=0.05) as running:
        yield running


def frame(rows: int = 12, partitions: int = 3):
    data = pd.DataFrame({"city": [f"c{i}" for i in range(rows)]}, index=range(100, 100 + rows))
    return dd.from_pandas(data, npartitions=partitions)


def test_a_dask_frame_maps_lazily_on_the_workers_with_their_own_key(cluster, server):
    driver = nbchat.Client(api_key=DRIVER_KEY, base_url=server.base_url)
    lazy = nbchat.map("Where is {city}?", frame(), model="loop-model", client=driver)
    assert is_dask_frame(lazy)
    assert list(lazy.columns) == ["reply", "error", "finish_reason", "tokens", "latency"]
    assert server.requests == 0  # nothing ran yet
    graph = pickle.dumps(dict(lazy.__dask_graph__()))
    assert DRIVER_KEY.encode() not in graph and WORKER_KEY.encode() not in graph
    result = lazy.compute()
    assert list(result.index) == list(range(100, 112))
    assert list(result["reply"]) == [f"re: Where is c{i}?" for i in range(12)]
    assert (result["error"] == "").all()  # empty: no error
    assert server.authorizations == [f"Bearer {WORKER_KEY}"] * 12


def test_the_concurrency_is_shared_by_the_partitions_running_at_once(cluster, server):
    client = nbchat.Client(api_key=DRIVER_KEY, base_url=server.base_url)
    lazy = nbchat.map("{city}", frame(24, 4), model="loop-model", client=client, concurrency=4)
    assert (lazy.compute()["error"] == "").all()
    assert server.max_in_flight <= 4  # two workers at once, two requests each


def test_a_column_the_frame_lacks_is_named_before_any_task_runs(server):
    client = nbchat.Client(api_key=DRIVER_KEY, base_url=server.base_url)
    with pytest.raises(nbchat.RequestValidationError, match="town") as info:
        nbchat.map("Where is {town}?", frame(), model="m", client=client)
    assert "\n" not in str(info.value)
    assert server.requests == 0


def test_batch_options_are_refused_for_a_dask_frame(server):
    client = nbchat.Client(api_key=DRIVER_KEY, base_url=server.base_url)
    with pytest.raises(nbchat.RequestValidationError, match="via"):
        nbchat.map("{city}", frame(), model="m", client=client, via="batch")


@pytest.mark.parametrize(
    ("concurrency", "partitions", "slots", "each"),
    [(16, 4, 2, 8), (16, 1, 8, 16), (3, 10, 8, 1), (128, 64, 16, 8)],
)
def test_each_partition_gets_its_share_of_the_concurrency(concurrency, partitions, slots, each):
    assert partition_concurrency(concurrency, partitions, slots) == each


def test_client_settings_carry_no_credential():
    client = nbchat.Client(
        api_key=DRIVER_KEY,
        base_url="http://user:hunter2pass@example.test/v1",
        headers={"X-Team": "a", "api-key": "secret-header-value"},
        server="vllm",
    )
    settings = client.settings()
    text = repr(settings)
    assert DRIVER_KEY not in text and "hunter2pass" not in text and "secret-header" not in text
    assert settings["headers"] == {"X-Team": "a"} and settings["server"] == "vllm"
    assert pickle.loads(pickle.dumps(settings)) == settings
