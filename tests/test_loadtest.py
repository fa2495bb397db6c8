"""The load harness's parts that need no server: how it reads the server's messages, how a
student checks a page, who arrives when, and the report. (A real run of the harness
against the app is a test of its own.) No timing is asserted."""

import asyncio

import pytest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from rotinv.bench.loadreport import BEGIN, END, Result, capacity, kept_section, markdown_section, write_section
from rotinv.bench.loadtest import LoadConfig, parse_args, plans
from rotinv.bench.stclient import Client, Element, SessionError
from rotinv.bench.students import Oracle, Plan, Student

from conftest import SHIPPED_LENET5


def started(run_id, *fragments):
    message = ForwardMsg()
    message.new_session.page_script_hash = "page"
    message.new_session.initialize.session_id = "session-1"
    page = message.new_session.app_pages.add()
    page.page_name, page.page_script_hash = "Inside the network", "inside-hash"
    message.metadata.run.script_run_id = run_id
    message.metadata.run.fragment_ids.extend(fragments)
    return message


def metric(path, label, body, fragment=""):
    message = ForwardMsg()
    message.delta.new_element.metric.label = label
    message.delta.new_element.metric.body = body
    message.delta.fragment_id = fragment
    message.metadata.delta_path.extend(path)
    return message


def finished(run_id, status=ForwardMsg.FINISHED_SUCCESSFULLY):
    message = ForwardMsg()
    message.script_finished = status
    message.metadata.run.script_run_id = run_id
    return message


def test_the_client_keeps_what_a_browser_shows():
    client = Client("http://127.0.0.1:1")
    for message in (started("r1"), metric([0, 0], "A", "1"), metric([0, 1], "B", "2"), finished("r1")):
        client._handle(message)
    assert client.session_id == "session-1" and client.pages == {"Inside the network": "inside-hash"}
    assert client.texts() == ["A: 1", "B: 2"]
    # A fragment run redraws its part only; a full run replaces the page.
    for message in (started("r2", "frag"), metric([0, 1], "B", "3", "frag"), finished("r2",
                    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY)):
        client._handle(message)
    assert client.texts() == ["A: 1", "B: 3"] and client.widget("metric", "B").fragment_id == "frag"
    # A run stopped for a newer one changes nothing; an exception element is noted.
    for message in (started("r3"), metric([0, 0], "C", "9"), finished("r3", ForwardMsg.FINISHED_EARLY_FOR_RERUN)):
        client._handle(message)
    boom = ForwardMsg()
    boom.delta.new_element.exception.type, boom.delta.new_element.exception.message = "ValueError", "boom"
    boom.metadata.delta_path.extend([0, 0])
    for message in (started("r4"), boom, finished("r4")):
        client._handle(message)
    assert client.exceptions == ["ValueError: boom"] and client.texts() == []


def test_a_request_is_answered_by_a_run_that_started_after_it():
    async def scenario():
        client = Client("http://127.0.0.1:1")
        client._handle(started("old"))  # in progress when the change is sent
        full = asyncio.ensure_future(client._wait("", 5))
        fragment = asyncio.ensure_future(client._wait("mine", 5))
        await asyncio.sleep(0)
        client._handle(finished("old"))
        client._handle(started("other", "theirs"))  # another fragment's timer: answers neither
        client._handle(finished("other", ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY))
        await asyncio.sleep(0)
        assert not full.done() and not fragment.done()
        client._handle(started("new"))
        client._handle(finished("new"))
        await asyncio.gather(full, fragment)
        with pytest.raises(SessionError, match="no answer"):
            await client._wait("", 0.01)

    asyncio.run(scenario())


@pytest.fixture(scope="module")
def oracle(data_root):
    return Oracle(SHIPPED_LENET5, data_root)


def student_seeing(oracle, index, label, upright, angle, rotated):
    student = Student("http://127.0.0.1:1", Plan(0, 0, 0, 10, None, 5, 5), oracle)
    page = [Element("markdown", type("M", (), {"body": f"Test image {index}, labelled **{label}**. Model: x."})()),
            Element("metric", type("M", (), {"label": "Prediction (upright)", "body": str(upright)})()),
            Element("metric", type("M", (), {"label": f"Prediction (rotated {angle}°)", "body": str(rotated)})())]
    student.client.page = {(0, i): element for i, element in enumerate(page)}
    return student


def model_says(oracle, index, angle):
    return next(digit for digit in range(10) if oracle.agrees(index, angle, digit))


def test_a_student_accepts_its_own_answers_and_nothing_else(oracle):
    index, angle = 123, 90
    right = (index, oracle.label(index), model_says(oracle, index, 0), angle, model_says(oracle, index, angle))
    student = student_seeing(oracle, *right)
    student.index, student.angle = index, angle
    student.check()
    assert student.outcome.errors == [] and student.outcome.checked == 1

    student = student_seeing(oracle, *right)
    student.index, student.angle = 124, 45  # another session's image and angle
    student.check()
    problems = " ".join(detail for _, detail in student.outcome.errors)
    assert "this session chose 124" in problems and "this session chose 45" in problems

    wrong = (right[4] + 1) % 10
    student = student_seeing(oracle, index, (right[1] + 1) % 10, right[2], angle, wrong)
    student.check()
    problems = " ".join(detail for _, detail in student.outcome.errors)
    assert "labelled" in problems and "is not the model's" in problems
    assert all(kind == "wrong answer" for kind, _ in student.outcome.errors)


def test_the_lesson_is_seeded_and_the_trainers_overlap():
    config = LoadConfig(sessions=30, trainings=3, seconds=60, seed=4)
    first, again = plans(config), plans(config)
    assert first == again and len(first) == 30
    trainers = [plan for plan in first if plan.train_at_s is not None]
    assert len(trainers) == 3 and all(2 <= plan.train_at_s - plan.arrive_s <= 4 for plan in trainers)
    assert all(0 <= plan.arrive_s <= 10 and plan.leave_s == 60 for plan in first)
    assert len({plan.seed for plan in first}) == 30
    assert sum(plan.train_at_s is not None for plan in plans(LoadConfig(2, 3, 60))) == 2


def test_bad_arguments_are_refused():
    for argv in (["--sessions", "0"], ["--seconds", "0"], ["--max-trainings", "0"], ["--sessions", "500"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert parse_args(["--quick"]).sessions == [3]


def result(sessions, trainings, p95, errors=0):
    return Result(sessions, trainings, [p95] * 5, [], [0.2], 3.0, {"finished": trainings} if trainings else {},
                  [], 0, {"timeout": errors} if errors else {}, [("timeout", "session 0: slow")] * errors, 5,
                  500_000_000, 60, 0.1)


def test_capacity_is_the_largest_class_under_the_bar():
    results = [result(1, 0, 0.1), result(10, 0, 0.5), result(30, 0, 1.5), result(50, 0, 0.9), result(1, 3, 2.0)]
    assert capacity(results, 0) == "10 session(s); 30 missed it"  # 50 passing after 30 failed does not count
    assert capacity(results, 3) == "none measured: 1 session(s) already missed it"
    assert capacity(results[:2], 0) == "10 session(s), the largest measured"


def test_the_section_replaces_its_old_self_and_nothing_else(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\nThe rest.\n")
    section = markdown_section([result(1, 0, 0.1), result(10, 3, 0.4, errors=2)], {}, "python -m rotinv.bench.loadtest", 30, 300)
    assert section.startswith(BEGIN) and section.rstrip().endswith(END) and "$" not in section
    assert "2 × timeout" in section
    write_section(path, section)
    write_section(path, section.replace("2 × timeout", "3 × timeout"))
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nThe rest.\n\n") and text.count(BEGIN) == 1 and "3 × timeout" in text
    assert kept_section(path) == section.replace("2 × timeout", "3 × timeout")
    assert kept_section(tmp_path / "missing.md") == ""


def slider(path, widget_id, set_by_script=False):
    message = ForwardMsg()
    message.delta.new_element.slider.id = widget_id
    message.delta.new_element.slider.label = "Angle"
    message.delta.new_element.slider.set_value = set_by_script
    message.metadata.delta_path.extend(path)
    return message


def sent_ids(client):
    return [state.id for state in client._rerun_message().rerun_script.widget_states.widgets]


def test_the_client_forgets_values_the_browser_would_forget():
    client = Client("http://127.0.0.1:1")
    for message in (started("r1"), slider([0, 0], "angle"), finished("r1")):
        client._handle(message)
    client.set_value(client.widget("slider", "Angle"), double_array_value=[90.0])
    assert sent_ids(client) == ["angle"]
    # The script set the widget itself (a callback, st.session_state): its value wins.
    for message in (started("r2"), slider([0, 0], "angle", set_by_script=True), finished("r2")):
        client._handle(message)
    assert sent_ids(client) == []
    client.set_value(client.widget("slider", "Angle"), double_array_value=[45.0])
    # Another page: the widget is gone, and so is its value, even when it comes back.
    for message in (started("r3"), metric([0, 0], "A", "1"), finished("r3"),
                    started("r4"), slider([0, 0], "angle"), finished("r4")):
        client._handle(message)
    assert sent_ids(client) == []
