"""Rotation sweep: test accuracy against the angle the digits are turned by."""

from __future__ import annotations

import streamlit as st

import app_layout
import app_shared
from rotinv import charts, scoreboard
from rotinv.evaluation import RotationPooled, angle_range, predict_logits
from rotinv.records import DEFAULT_ANGLES
from rotinv.report import REPORT_TABLE1, report_accuracy_by_our_angle
from rotinv.rotation import INTERPOLATIONS, rotate_tensor

TTA_CHOICES = (1, 4, 8, 12)

st.title("Rotation sweep")
st.markdown(
    "Turn every one of MNIST's test digits by the same angle and count how many the model still "
    "reads correctly; then do it again at the next angle. A rotation-invariant model would draw a flat line."
)

models = app_shared.all_models()
if not models:
    st.info("There is no model to sweep yet: train one (or upload a .pt) on the Train page.", icon=":material/info:")
    st.stop()
test = app_shared.mnist_split(train=False)
if test is None:
    st.error(f"The sweep needs the MNIST test set. {app_shared.data_problem() or ''}", icon=":material/database:")
    st.stop()

# --- settings ------------------------------------------------------------------------------------

by_key = {entry.key: entry for entry in models}
active = app_shared.active_model()
# The models get a line of their own, so every chosen model's name stays whole.
chosen_keys = st.multiselect("Models", list(by_key), default=[active.key], key="sweep_models", wrap=True,
                             format_func=lambda key: app_shared.display_label(by_key[key]),
                             help="Compare several models on the same chart.")
range_column, interpolation_column, how_column = app_layout.row("sweep_settings", [380, 200, 280], [3, 2, 3],
                                                                gap="medium")
with range_column:
    start_column, stop_column, step_column = app_layout.row("sweep_range", [115, 115, 115])
    start = start_column.number_input("From (°)", min_value=-360, max_value=720, value=0, step=15, key="sweep_start")
    stop = stop_column.number_input("To (°)", min_value=-360, max_value=720, value=360, step=15, key="sweep_stop")
    step = step_column.number_input("Every (°)", min_value=1, max_value=360, value=15, step=1, key="sweep_step")
with interpolation_column:
    interpolation = st.radio("Interpolation", list(INTERPOLATIONS)[::-1], horizontal=True, key="sweep_interp",
                             help="How pixels are filled in when turning by angles that are not multiples of 90°.")
with how_column:
    tta = st.selectbox("Test-time rotation pooling", TTA_CHOICES, key="sweep_tta",
                       format_func=lambda n: "off" if n == 1 else f"average over {n} turned copies",
                       help="Show the model N copies of each digit turned 360/N degrees apart and average its answers.")
    live = st.toggle("Measure live", key="sweep_live",
                     help="The shipped models' sweeps were measured once and stored beside them "
                          "(`python -m rotinv record`); switch this on to measure everything again now.")

if not chosen_keys:
    st.info("Choose at least one model above.", icon=":material/info:")
    st.stop()
try:
    angles = angle_range(float(start), float(stop), float(step))
except ValueError as error:
    st.error(str(error), icon=":material/error:")
    st.stop()
chosen = [by_key[key] for key in chosen_keys]

# Points no recorded sweep holds are measured now, which can take minutes (a C4 model
# pooled over 12 copies: half an hour): say how long, and wait for a click first.
to_measure = {entry.key: app_shared.angles_to_measure(entry, test, angles, interpolation, tta, use_records=not live)
              for entry in chosen}
settings = (tuple(chosen_keys), tuple(angles), interpolation, tta, live)
confirmed = st.session_state.setdefault("sweep_confirmed", set())
if settings not in confirmed and any(to_measure.values()):
    seconds = sum(len(to_measure[entry.key]) * len(test) * tta * app_shared.seconds_per_image(entry, test)
                  for entry in chosen)
    if seconds > app_shared.ASK_BEFORE_LIVE_S:
        points = sum(len(pending) for pending in to_measure.values())
        copies = f" × {tta} turned copies" if tta > 1 else ""
        notice = st.empty()
        with notice.container():
            st.warning(f"{points} of these points would be measured now, not read from a recorded sweep: "
                       f"{points} × {len(test):,} test digits{copies}, about {max(1, round(seconds / 60))} min on "
                       "this server, and the page waits until it is done. Fewer angles or models, or pooling off, "
                       "is quicker" + (", and so is *Measure live* off." if live else "."),
                       icon=":material/hourglass_top:")
            agreed = st.button("Measure them now", key="sweep_measure_now")
        if not agreed:
            st.stop()
        notice.empty()
confirmed.add(settings)

# --- the sweep -----------------------------------------------------------------------------------

results: dict[str, list] = {}
total, done, from_records = len(chosen) * len(angles), 0, 0
bar = st.progress(0.0, text="Measuring…")
for entry in chosen:
    label = app_shared.display_label(entry)
    results[label] = []
    for angle in angles:
        bar.progress(done / total, text=f"{label}: {angle:g}° ({done + 1} of {total})")
        result, was_recorded = app_shared.result_at(entry, test, angle, interpolation, tta, use_records=not live)
        results[label].append(result)
        from_records += was_recorded
        done += 1
bar.empty()

frame = charts.sweep_frame(results)
report = report_accuracy_by_our_angle()
st.header("Accuracy against angle")
app_shared.draw_chart(st, charts.accuracy_chart, frame, report, width="stretch")
summaries = []
for label, by_angle in results.items():
    best, worst = max(by_angle, key=lambda r: r.accuracy), min(by_angle, key=lambda r: r.accuracy)
    summaries.append(f"{label}: {100 * best.accuracy:.1f}% at best ({best.angle:g}°), "
                     f"{100 * worst.accuracy:.1f}% at worst ({worst.angle:g}°)")
st.caption(
    "Each point is the whole test set turned by that angle (counter-clockwise); a rotation-invariant model "
    "draws a flat line. " + "; ".join(summaries) + ". The dashed line is guessing (10%). "
    "The black diamonds are the report's numbers; it turned clockwise, so its 90° is drawn at our 270° "
    "and its 270° at our 90°, and its upright number at 0° as well as 360°, the same turn."
    + (f" With test-time pooling, each answer is averaged over {tta} turned copies." if tta > 1 else "")
    + (f" {from_records} of the {total} points were measured earlier and stored with the shipped checkpoints "
       "(`python -m rotinv record`, checked again by the test suite); switch on *Measure live* to measure "
       "them now." if from_records else "")
)

app_shared.draw_chart(st, charts.loss_chart, frame, width="stretch")
st.caption("Test loss (mean cross-entropy), colours as above: where accuracy falls the loss climbs far "
           "above its upright value — the model is not just wrong, it is confidently wrong.")

st.subheader("The numbers")
for metric, tab in zip(("Accuracy", "Loss"), st.tabs(["Accuracy", "Loss"], key="sweep_numbers")):
    with tab:
        table = charts.sweep_table(frame, metric)
        number = "percent" if metric == "Accuracy" else "%.4f"
        st.dataframe(table, hide_index=True, height=360, key=f"sweep_table_{metric.lower()}", column_config={
            column: st.column_config.NumberColumn(format="%g°" if column == "Angle (°)" else number)
            for column in table.columns
        })
st.caption(f"The numbers behind the charts: {'each model' if len(chosen) > 1 else 'the model'}'s accuracy and "
           f"loss on all {len(test):,} test digits, one row per angle" + (", one column per model." if len(chosen) > 1
                                                                          else "."))

# --- per digit -----------------------------------------------------------------------------------

st.header("Which digits survive a turn?")
if len(chosen) > 1:
    detail_key = st.selectbox("Model for the details below", chosen_keys, key="sweep_detail_model",
                              format_func=lambda key: app_shared.display_label(by_key[key]))
    detail = by_key[detail_key]
else:
    detail = chosen[0]
detail_results = results[app_shared.display_label(detail)]
per_class = charts.per_class_frame(detail_results)
app_shared.draw_chart(st, charts.per_class_heatmap, per_class, width="stretch")
half_turn = next((r for r in detail_results if r.angle % 360 == 180), None)
survivors = ""
if half_turn is not None:
    kept = [str(d) for d, accuracy in enumerate(half_turn.per_class_accuracy) if accuracy >= 0.5]
    survivors = (f" At {half_turn.angle:g}° the digits still read right at least half the time: "
                 f"{', '.join(kept) if kept else 'none'}.")
st.caption("One row per true digit, one column per angle; bright is right, dark is wrong. "
           "Look for the digits that still read right upside down, and the columns where everything fails."
           + survivors)

st.subheader("6 and 9: a turned 6 *is* a 9")
six_nine_column, numbers_column = app_layout.row("sweep_six_nine", [400, 220], [3, 1], gap="large")
with six_nine_column:
    app_shared.draw_chart(st, charts.highlight_digits_chart, per_class, (6, 9), width="stretch")
    st.caption("Accuracy on the 6s (red) and the 9s (blue) against angle; the other digits in grey. "
               "At 180° a 6 looks like a 9, so a model that ignored rotation could not tell them apart.")
with numbers_column:
    if half_turn is not None:
        # One under the other beside the chart; side by side when the page is narrow and they sit below it.
        correct, six_as_nine, nine_as_six = app_layout.row("sweep_six_nine_numbers", [190, 190, 190])
        correct.metric(f"6s read correctly at {half_turn.angle:g}°",
                       f"{100 * half_turn.per_class_accuracy[6]:.1f}%", border=True)
        six_as_nine.metric(f"6s read as 9 at {half_turn.angle:g}°",
                           f"{100 * half_turn.confusion[6][9] / max(sum(half_turn.confusion[6]), 1):.1f}%", border=True)
        nine_as_six.metric(f"9s read as 6 at {half_turn.angle:g}°",
                           f"{100 * half_turn.confusion[9][6] / max(sum(half_turn.confusion[9]), 1):.1f}%", border=True)
    else:
        st.info("Include 180° in the sweep to see how many 6s are read as 9s.")

# --- one angle up close --------------------------------------------------------------------------

st.header("One angle up close")
default_angle = next((a for a in angles if a % 360 == 180), angles[len(angles) // 2])
close_angle = st.select_slider("Angle", angles, value=default_angle, format_func=lambda a: f"{a:g}°",
                               key="sweep_close_angle", help="Any of the angles swept above.")
close = next(r for r in detail_results if r.angle == close_angle)
matrix_column, gallery_column = app_layout.row("sweep_close_up", [400, 320], [3, 2], gap="large")
with matrix_column:
    app_shared.draw_chart(st, charts.confusion_chart, charts.confusion_frame(close), width="stretch")
    row6, row9 = close.confusion[6], close.confusion[9]
    st.caption(f"Confusion matrix at {close_angle:g}°: rows are the true digits, columns what the model said; "
               f"a perfect model fills only the diagonal. Here {row6[9]:,} of {sum(row6):,} sixes were read as 9 "
               f"and {row9[6]:,} of {sum(row9):,} nines as 6.")
with gallery_column:
    indices = charts.first_of_each_class(test.labels)
    images = test.images[indices]
    model = detail.model if tta <= 1 else RotationPooled(detail.model, tta, interpolation)
    predicted = predict_logits(model, images, close_angle, interpolation).argmax(1).tolist()
    turned = rotate_tensor(images, close_angle, interpolation)
    pictures = charts.digit_pictures(turned, scale=3)
    captions = [f"{'✓' if p == int(t) else '✗'} true {int(t)}, said {p}" for t, p in zip(test.labels[indices], predicted)]
    st.markdown(f"**The first test digit of each class, turned {close_angle:g}°**")
    for column, picture, caption in zip(app_layout.row("sweep_gallery", [100] * len(pictures)), pictures, captions):
        column.image(picture, caption=caption, width="stretch", output_format="PNG")
    st.caption("What the model was shown, and what it answered. Try 90°: many digits become other digits' shapes.")

# --- the scoreboard --------------------------------------------------------------------------------

st.header("Scoreboard: which model is right at every angle?")
st.markdown("Every shipped model on one line, from its sweep over the whole turn (every 15°, bilinear, no "
            "test-time pooling) on all the test digits, as recorded beside its checkpoint.")
scores, unrecorded = [], []
for shipped in app_shared.shipped_models():
    if app_shared.angles_to_measure(shipped, test, DEFAULT_ANGLES):
        unrecorded.append(shipped.label)  # measuring 24 angles here would hold the page for minutes
        continue
    scores.append(scoreboard.score(shipped.label, app_shared.results_at(shipped, test, DEFAULT_ANGLES),
                                   shipped.metadata))
if scores:
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(scoreboard.table(scores), hide_index=True, key="sweep_scoreboard", column_config={
        "Model": st.column_config.TextColumn(width="medium"),
        **{column: percent for column in ("Upright", "At its worst", "Mean over angles", "6s read as 6",
                                          "9s read as 9")},
        "Parameters": st.column_config.NumberColumn(format="localized"),
    })
    st.markdown(scoreboard.verdict(scores))
    st.caption(f"6s and 9s: the share of each read correctly, averaged over the {len(DEFAULT_ANGLES)} angles. "
               "Training: the wall time its JSON records, on the machine it names.")
    st.subheader("The price of invariance: 6 and 9")
    st.markdown(scoreboard.six_nine_sentence(scores))
if unrecorded:
    st.caption(f"Not scored, no recorded sweep for these weights: {', '.join(unrecorded)} "
               "(`python -m rotinv record models/NAME.pt` records one).")
st.subheader("For context: published figures")
st.dataframe(scoreboard.literature_table(REPORT_TABLE1["test_accuracy"]), hide_index=True, key="sweep_literature",
             column_config={"Result": st.column_config.TextColumn(width="large"),
                            "Test accuracy": st.column_config.NumberColumn(format="percent")})
st.caption("The report's number is its upright LeNet-5. The others are on **MNIST-rot**, a different benchmark: "
           "12,000 training and 50,000 test digits, every one turned by a random angle, so they learn from a fifth "
           "of our training digits and are scored on one random angle per digit rather than our every 15°.")
