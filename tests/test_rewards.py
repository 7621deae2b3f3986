"""Reward functions on hand-written completions, reward names and weights, and users' reward files."""

from __future__ import annotations

import pytest

from engine.train import rewards
from engine.config import ConfigError, resolve, reward_weights
from engine.errors import EngineError

TAGS = rewards.Tags()
GOOD = "<reasoning>48 / 2 = 24, 48 + 24 = 72</reasoning>\n<answer>72</answer>"
NO_FORMAT = "The answer is 72."
TRAILING = GOOD + " and some more"


def _call(name: str, completions: list, answers: list[str] | None = None) -> list[float]:
    fn = rewards.BUILTIN[name](TAGS)
    kwargs = {"answer": answers} if answers is not None else {}
    return fn(prompts=["q"] * len(completions), completions=completions, **kwargs)


def test_exact_format():
    assert _call("exact_format", [GOOD, NO_FORMAT, TRAILING, "<answer>72</answer>"]) == [3.0, 0.0, 0.0, 0.0]


def test_soft_format_counts_each_tag_once():
    twice = GOOD + "<answer>1</answer>"
    assert _call("soft_format", [GOOD, NO_FORMAT, twice, "<reasoning>x</reasoning>"]) == [2.0, -2.0, 0.0, 0.0]


def test_correctness_scores_like_the_seed():
    def ans(a: str) -> str:
        return f"<reasoning>r</reasoning><answer>{a}</answer>"

    completions = [ans("72"), ans(" 72 "), ans("75"), ans("85"), ans("10"), ans("many"), NO_FORMAT]
    assert _call("correctness", completions, ["72"] * 7) == [3.0, 1.5, 0.5, 0.25, -1.0, -0.5, 0.0]


def test_number_match_reads_the_first_number_after_the_answer_tag():
    completions = [GOOD, "<reasoning>r</reasoning><answer>about 72.0</answer>", "<answer>71</answer>", NO_FORMAT]
    assert _call("number_match", completions, ["72"] * 4) == [1.5, 1.5, 0.0, 0.0]


def test_rewards_read_conversational_completions():
    chat = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": NO_FORMAT}]]
    assert _call("exact_format", chat) == [3.0, 0.0]
    assert _call("correctness", chat, ["72", "72"]) == [3.0, 0.0]


def test_correctness_without_a_ground_truth_says_so():
    with pytest.raises(ValueError, match="ground truth"):
        _call("correctness", [GOOD])


def test_ground_truth_and_answer_checks():
    assert rewards.ground_truth("Natalia sold 24 clips.\n#### 72") == "72"
    assert rewards.ground_truth("#### 1,234") == "1234"
    assert rewards.ground_truth("Paris") == "Paris"
    assert rewards.answer_correct(GOOD, "72", TAGS) and not rewards.answer_correct(GOOD, "71", TAGS)
    assert rewards.format_ok(GOOD, TAGS) and not rewards.format_ok(NO_FORMAT, TAGS)


def test_bare_tags_mean_the_answer_alone():
    bare = rewards.Tags("", "", "", "")
    assert rewards.format_ok(" 7 ", bare) and not rewards.format_ok("7 8", bare)
    assert rewards.answer_correct("7", "7", bare)
    fn = rewards.make_number_match(rewards.Tags(answer_start=""))
    assert fn(prompts=["q"] * 2, completions=["x 7 y", "8"], answer=["7", "7"]) == [1.5, 0.0]


def _grpo(**over) -> dict:
    """The schema's grpo section (the seed trainer's tags and rewards), not a preset's."""
    from engine.config.schema import defaults

    cfg = defaults()["grpo"]
    cfg.update(over)
    return cfg


def test_build_names_weights_aliases_and_trl_rewards():
    built = rewards.build(_grpo(rewards={"check_answer": 2.0, "match_format_exactly": 0.5, "think_format_reward": 1.0}))
    assert built.names == ["check_answer", "match_format_exactly", "think_format_reward"]
    assert built.weights == [2.0, 0.5, 1.0]
    assert [f.__name__ for f in built.funcs] == built.names  # TRL names the metrics after __name__
    assert built.funcs[0](prompts=["q"], completions=[GOOD], answer=["72"]) == [3.0]


def test_unknown_reward_name_is_a_config_error_with_a_suggestion():
    with pytest.raises(EngineError, match="did you mean 'correctness'") as exc:
        rewards.build(_grpo(rewards=[{"name": "corectness"}]))
    assert exc.value.kind == "config"


@pytest.mark.parametrize("value", ["correctness", [{"name": "a", "wieght": 1}], [{"name": "a", "weight": "high"}], [{"name": "a"}, {"name": "a"}]])
def test_bad_reward_lists_are_rejected(value):
    with pytest.raises(ConfigError):
        reward_weights(value)


def test_reward_file_spec_is_checked_when_the_config_resolves():
    with pytest.raises(ConfigError, match="path.py:function"):
        resolve(preset="grpo-quick", sets=["grpo.reward_files=[rewards.txt]"])


USER_FILE = '''
def length_penalty(prompts, completions, **kwargs):
    return [-len(c if isinstance(c, str) else c[0]["content"]) / 100 for c in completions]

def one_number(prompts, completions, **kwargs):
    return 1.0

def short_list(prompts, completions, **kwargs):
    return [1.0]

def words(prompts, completions, **kwargs):
    return ["good" for _ in completions]

def raises(prompts, completions, **kwargs):
    raise KeyError("question")
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_FILE, encoding="utf-8")
    return path


ROWS = [{"prompt": [{"role": "user", "content": "2+2?"}], "answer": "4", "solution": "4"}]


def test_user_reward_file_gets_weight_one_unless_named(user_file):
    built = rewards.build(_grpo(rewards={"correctness": 1.0}, reward_files=[f"{user_file}:length_penalty"]))
    assert built.names == ["correctness", "length_penalty"] and built.weights == [1.0, 1.0]
    rewards.check_shapes(built, ROWS, TAGS)
    named = rewards.build(_grpo(rewards={"length_penalty": 0.3}, reward_files=[f"{user_file}:length_penalty"]))
    assert named.weights == [0.3]


@pytest.mark.parametrize(
    "func, message",
    [
        ("one_number", "must return a list of 2 floats"),
        ("short_list", "must return a list of 2 floats"),
        ("words", "must return floats"),
        ("raises", "fails on a dummy completion: KeyError"),
    ],
)
def test_wrong_shape_is_one_clear_error(user_file, func, message):
    built = rewards.build(_grpo(rewards={}, reward_files=[f"{user_file}:{func}"]))
    with pytest.raises(EngineError, match=message) as exc:
        rewards.check_shapes(built, ROWS, TAGS)
    assert exc.value.kind == "config" and func in exc.value.message


def test_broken_reward_files(tmp_path, user_file):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(prompts, completions, **kw):\n    return [0.0 for c in completions\n", encoding="utf-8")
    with pytest.raises(EngineError, match=r"broken.py fails to import \(line \d\): SyntaxError"):
        rewards.load_user_reward(f"{broken}:f")
    missing_import = tmp_path / "missing_import.py"
    missing_import.write_text("import no_such_module_xyz\n", encoding="utf-8")
    with pytest.raises(EngineError, match="ModuleNotFoundError"):
        rewards.load_user_reward(f"{missing_import}:f")
    with pytest.raises(EngineError, match="has no function 'nope'; it defines length_penalty"):
        rewards.load_user_reward(f"{user_file}:nope")
    with pytest.raises(EngineError, match="does not exist"):
        rewards.load_user_reward(f"{tmp_path / 'absent.py'}:f")


def test_reward_flag_maps_to_reward_files(tmp_path, monkeypatch, user_file):
    from cockpit.launch import build_config

    monkeypatch.chdir(tmp_path)
    cfg = build_config("grpo-quick", None, {"reward": ["my_rewards.py:length_penalty"]}, [])
    assert cfg["grpo"]["reward_files"] == [f"{user_file}:length_penalty"]
    no_flag = build_config("grpo-quick", None, {"reward": None}, [])["grpo"]["reward_files"]
    assert no_flag == resolve(preset="grpo-quick")["grpo"]["reward_files"]  # no --reward: the preset's own files
