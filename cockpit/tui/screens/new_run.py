"""The new-run form: a preset, a dataset, a model and the preset's key options, validated inline."""

from __future__ import annotations

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Footer, Input, Label, Select, Static

from cockpit.tui import new_run
from cockpit.tui.widgets.new_run.estimate import MemoryEstimate
from engine import config as config_mod

VALIDATE_DELAY_S = 0.3


def input_id(key: str) -> str:
    return "field-" + key.replace(".", "-").replace("_", "-")


class NewRunScreen(Screen):
    """Edits a `RunRequest`; starts it through the same code as `cockpit run`."""

    BINDINGS = [
        Binding("ctrl+s", "start", "start the run"),
        Binding("escape", "cancel", "cancel"),
    ]

    def __init__(self, request: new_run.RunRequest | None = None, heading: str = "new run") -> None:
        super().__init__()
        self.from_fix = request is not None
        names = config_mod.preset_names()
        self.request = request or new_run.for_preset("quick-test" if "quick-test" in names else (names[0] if names else None))
        self.heading = heading
        self._validate_timer = None

    def compose(self) -> ComposeResult:
        help_text = config_mod.field_help()
        req = self.request
        with VerticalScroll(id="new-run"):
            yield Static(self.heading, id="new-run-title")
            with Grid(id="form"):
                yield Label("preset")
                if self.from_fix:
                    yield Static(f"the run's config: {req.config_file}", id="field-preset")
                else:
                    options = [(f"{n}  {config_mod.preset_summary(n)[:60]}", n) for n in config_mod.preset_names()]
                    yield Select(options, value=req.preset or Select.BLANK, allow_blank=False, id="field-preset")
                yield Label("dataset")
                yield Input(req.dataset, placeholder="JSON, JSONL or CSV", id="field-data-path", tooltip=help_text["data.path"])
                yield Label("model")
                yield Input(req.model, placeholder="hub id, local dir, or builtin:tiny", id="field-model-name-or-path", tooltip=help_text["model.name_or_path"])
                for key, label in new_run.FORM_KEYS.items():
                    yield Label(label)
                    yield Input(req.values.get(key, ""), id=input_id(key), tooltip=f"{key}: {help_text.get(key, '')}")
                yield Label("more --set")
                yield Input(req.extra, placeholder="section.key=value ...", id="field-extra")
            if req.resume_note:
                yield Checkbox(req.resume_note, value=req.resume_from is not None, disabled=req.resume_from is None, id="resume")
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Start (ctrl+s)", id="start", variant="success")
                yield Button("Cancel (esc)", id="cancel")
        yield MemoryEstimate(id="form-estimate")  # under the scrolling form, above the footer: always in sight
        yield Footer()

    def on_mount(self) -> None:
        self.validate()

    def read_form(self) -> new_run.RunRequest:
        """The request with what the fields say now."""
        req = self.request
        req.dataset = self.query_one("#field-data-path", Input).value
        req.model = self.query_one("#field-model-name-or-path", Input).value
        req.values = {key: self.query_one("#" + input_id(key), Input).value for key in new_run.FORM_KEYS}
        req.extra = self.query_one("#field-extra", Input).value
        return req

    @on(Select.Changed, "#field-preset")
    def preset_changed(self, event: Select.Changed) -> None:
        if event.value == self.request.preset or event.value is Select.BLANK:
            return
        self.request = new_run.for_preset(str(event.value))
        self.query_one("#field-data-path", Input).value = self.request.dataset
        self.query_one("#field-model-name-or-path", Input).value = self.request.model
        for key in new_run.FORM_KEYS:
            self.query_one("#" + input_id(key), Input).value = self.request.values.get(key, "")

    @on(Input.Changed)
    def form_changed(self) -> None:
        if self._validate_timer is not None:
            self._validate_timer.stop()
        self._validate_timer = self.set_timer(VALIDATE_DELAY_S, self.validate)

    @on(Input.Submitted)
    def form_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_start()

    def validate(self) -> bool:
        """The config as the layers resolve it now; an error goes under the form and marks its field."""
        for widget in self.query(Input):
            widget.remove_class("-invalid")
        try:
            req = self.read_form()
            cfg = new_run.build_config(req.preset, req.config_file, req.flags(), req.sets())
        except config_mod.ConfigError as exc:
            self.query_one(MemoryEstimate).clear()
            self.show_error(str(exc))
            return False
        self.query_one(MemoryEstimate).show(cfg)
        self.query_one("#form-error", Static).update("")
        return True

    def show_error(self, message: str, key: str | None = None) -> None:
        from rich.markup import escape

        self.query_one("#form-error", Static).update(f"[bold red]error:[/] {escape(message)}")
        key = new_run.key_in_error(message, key)
        if key == "data.path":
            self.query_one("#field-data-path", Input).add_class("-invalid")
        elif key in new_run.FORM_KEYS:
            self.query_one("#" + input_id(key), Input).add_class("-invalid")
        elif "--set" in message:
            self.query_one("#field-extra", Input).add_class("-invalid")

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if not self.validate():
            return
        resume = self.query("#resume")
        resume_from = self.request.resume_from if resume and resume.first(Checkbox).value else None
        self.query_one("#start", Button).disabled = True
        self.query_one("#form-error", Static).update("checking the data ...")
        self.launch(self.read_form(), resume_from)

    @work(thread=True, exclusive=True, group="new-run", exit_on_error=False)
    def launch(self, request: new_run.RunRequest, resume_from) -> None:
        """Reads the data as the engine will, makes the run dir and starts the engine."""
        from cockpit.supervisor import RunDirError
        from engine.errors import EngineError
        from engine.run_dir import RunDirBusy

        request.resume_from = resume_from
        try:
            prepared = new_run.resolve(request)
            handle = new_run.launch(prepared)
        except (EngineError, RunDirError, RunDirBusy, OSError) as exc:
            self.app.call_from_thread(self._failed, str(exc), getattr(exc, "key", None))
            return
        self.app.call_from_thread(self.app.run_started, handle, prepared.warnings + prepared.notes)

    def _failed(self, message: str, key: str | None = None) -> None:
        self.query_one("#start", Button).disabled = False
        self.show_error(message, key)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.app.pop_screen()
