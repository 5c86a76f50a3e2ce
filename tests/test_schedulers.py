import numpy as np
from ray.tune.schedulers import TrialScheduler

from ulsam_search.search.mo_asha import MultiObjectiveASHA, nondominated_order

CONTINUE, STOP = TrialScheduler.CONTINUE, TrialScheduler.STOP


def test_nondominated_order_fronts_then_crowding():
    # (top1 max, macs min): a, c, e are on the first front; b is dominated by a; d by everything on the front.
    values = np.array([[90, 10], [80, 12], [70, 5], [60, 20], [85, 8]])
    order = nondominated_order(values, ["max", "min"])
    assert set(order[:3]) == {0, 2, 4} and order[3:] == [1, 3]
    assert order[:2] == [0, 2] or order[:2] == [2, 0]  # the front's extremes (infinite crowding) come first


def test_mo_asha_promotes_the_pareto_front_and_stops_the_dominated():
    scheduler = MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4, grace_period=1, reduction_factor=2)
    assert scheduler.rungs == [1, 2]
    assert scheduler.decide("a", {"epoch": 1, "top1": 50.0, "macs": 10}) == CONTINUE  # first at the rung
    assert scheduler.decide("b", {"epoch": 1, "top1": 40.0, "macs": 20}) == STOP  # dominated by a; keep 1 of 2
    # c is less accurate than a but cheaper: on the front, kept (keep 2 of 3).
    assert scheduler.decide("c", {"epoch": 1, "top1": 30.0, "macs": 5}) == CONTINUE
    assert scheduler.stopped == {"b"}
    # A single-metric ASHA would have stopped c at its rung; here only dominated trials go.
    assert scheduler.decide("a", {"epoch": 2, "top1": 60.0, "macs": 10}) == CONTINUE
    assert scheduler.decide("c", {"epoch": 2, "top1": 20.0, "macs": 25}) == STOP
    # The full budget, failed results and results between rungs never stop a trial.
    assert scheduler.decide("a", {"epoch": 4, "top1": 1.0, "macs": 99}) == CONTINUE
    assert scheduler.decide("d", {"epoch": 0, "error": "boom"}) == CONTINUE
    assert scheduler.decide("a", {"epoch": 3, "top1": 1.0, "macs": 99}) == CONTINUE


def test_mo_asha_never_stops_the_baseline_but_ranks_against_it():
    scheduler = MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4, grace_period=1, reduction_factor=2)
    assert scheduler.decide("a", {"epoch": 1, "top1": 50.0, "macs": 10}) == CONTINUE
    # The baseline is dominated by a: recorded at the rung, yet it goes on.
    assert scheduler.decide("base", {"epoch": 1, "top1": 40.0, "macs": 20, "baseline": True}) == CONTINUE
    assert "base" in scheduler.recorded[1] and scheduler.stopped == set()
    assert scheduler.decide("b", {"epoch": 1, "top1": 30.0, "macs": 30}) == STOP  # behind a and the baseline


def _history(*top1):
    return [{"epoch": e, "top1": t} for e, t in enumerate(top1, start=1)]


def test_a_relaunched_trial_is_recorded_at_the_rungs_it_passed_with_what_it_had_there():
    scheduler = MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4, grace_period=1, reduction_factor=2)
    assert scheduler.decide("a", {"epoch": 1, "top1": 50.0, "macs": 10}) == CONTINUE
    assert scheduler.decide("a", {"epoch": 2, "top1": 60.0, "macs": 10}) == CONTINUE
    # b was at 55 % after epoch 1 (before the kill); relaunched from epoch 2, its first result is epoch 3 at 90 %.
    # Recorded at rungs 1 and 2 with its epoch-1 and epoch-2 accuracy, not 90; not judged there again (it passed).
    relaunched = {"epoch": 3, "top1": 90.0, "macs": 20, "promoted_through": 2, "history": _history(55.0, 40.0, 90.0)}
    assert scheduler.decide("b", relaunched) == CONTINUE
    assert scheduler.recorded[1]["b"] == [55.0, 20.0] and scheduler.recorded[2]["b"] == [40.0, 20.0]
    # c reaches rung 2 dominated by a (60 % at 10 MACs) and by b (40 % at 20): third of 3, 2 kept.
    assert scheduler.decide("c", {"epoch": 2, "top1": 39.0, "macs": 30, "history": _history(70.0, 39.0)}) == STOP


def test_a_rebuilt_scheduler_decides_as_the_uninterrupted_one():
    results = {"a": (50.0, 60.0, 10), "b": (40.0, 45.0, 20), "c": (45.0, 30.0, 5), "d": (42.0, 70.0, 8),
               "e": (30.0, 20.0, 50), "f": (48.0, 50.0, 9)}

    def run(scheduler, names):
        decisions = {}
        for name in names:
            top1_1, top1_2, macs = results[name]
            decisions[name] = [scheduler.decide(name, {"epoch": e, "top1": t, "macs": macs,
                                                       "history": _history(top1_1, top1_2)[:e]})
                               for e, t in ((1, top1_1), (2, top1_2))]
            if STOP in decisions[name]:
                decisions[name] = decisions[name][:decisions[name].index(STOP) + 1]
        return decisions

    straight = run(MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4), list(results))
    # A resumed run: the first three ended before the kill; a new scheduler gets them from their histories.
    rebuilt = MultiObjectiveASHA([("top1", "max"), ("macs", "min")], max_t=4)
    for name in "abc":
        epochs = len(straight[name])
        rebuilt.restore(f"journal-{name}", {"epoch": epochs, "macs": results[name][2],
                                            "history": _history(*results[name][:2])[:epochs]})
    assert run(rebuilt, "def") == {name: straight[name] for name in "def"}
    assert any(STOP in straight[name] for name in "def")  # the comparison is not trivially all-CONTINUE


def test_a_relaunched_trial_reports_its_unjudged_checkpoint_before_training_on(tmp_path):
    """Killed after epoch 1's checkpoint, before the scheduler judged epoch 1: the relaunch reports epoch 1 again
    (the checkpoint's numbers, nothing trained) so rung 1 is judged there, as in a run never interrupted; a trial
    promoted through its last checkpointed epoch goes straight on."""
    from ulsam_search.config import SearchConfig
    from ulsam_search.search.trial import TrialJob, trial_results

    config = SearchConfig(name="t", backbone="mobilenet_v1", width=0.25, dataset={"name": "digits", "train_limit": 64},
                          training={"epochs": 3, "batch_size": 32, "warmup_epochs": 0.5}, space={"blocks": [7]})
    job = TrialJob(config, str(tmp_path), True, 32, 10)
    trial = {"arch": "mobilenet_v1@0.25", "number": 0, "macs": 1, "params": 1}
    first = trial_results(trial, job)
    epoch_1 = next(first)
    first.close()  # the kill
    relaunched = trial_results(trial, job)
    again = next(relaunched)
    assert (again["epoch"], again["top1"], again["val_loss"]) == (1, epoch_1["top1"], epoch_1["val_loss"])
    assert again["resumed_from_epoch"] == 1 and [h["epoch"] for h in again["history"]] == [1]
    assert next(relaunched)["epoch"] == 2
    relaunched.close()
    promoted = trial_results({**trial, "promoted_through": 2}, job)
    assert next(promoted)["epoch"] == 3
