"""The new-run form: a preset, a dataset, a model and the run type's key options, validated inline.

The error and the memory estimate sit under the scrolling fields, always in sight; the field an
error is about is marked, and ctrl+s moves the focus to it.
"""

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
        self.error_key: str | None = None  # the field the error on show is about

    def compose(self) -> ComposeResult:
        help_text = config_mod.field_help()
        req = self.request
        with VerticalScroll(id="new-run"):
            yield Static(f"{self.heading}  [dim]({req.run_type.upper()}: its fields follow the preset)[/]", id="new-run-title")
            with Grid(id="form"):
                yield Label("preset")
                if self.from_fix:
                    yield Static(f"the run's config: {req.config_file}", id="field-preset")
                else:
                    options = [(f"{n}  {config_mod.preset_summary(n)[:60]}", n) for n in config_mod.preset_names()]
                    yield Select(options, value=req.preset or Select.BLANK, allow_blank=False, id="field-preset", compact=True)
                yield Label("dataset")
                yield Input(req.dataset, placeholder="JSON, JSONL or CSV", id="field-data-path", tooltip=help_text["data.path"], compact=True)
                yield Label("model")
                yield Input(req.model, placeholder="hub id, local dir, or builtin:tiny", id="field-model-name-or-path",
                            tooltip=help_text["model.name_or_path"], compact=True)
                for key, label in req.fields.items():
                    yield Label(label)
                    yield Input(req.values.get(key, ""), id=input_id(key), tooltip=f"{key}: {help_text.get(key, '')}", compact=True)
                yield Label("more --set")
                yield Input(req.extra, placeholder="section.key=value ...", id="field-extra", compact=True)
            if req.resume_note:
                yield Checkbox(req.resume_note, value=req.resume_from is not None, disabled=req.resume_from is None, id="resume")
            with Horizontal(id="form-buttons"):
                yield Button("Start (ctrl+s)", id="start", variant="success", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)
        yield Static("", id="form-error")  # under the fields, above the estimate: never scrolled away
        yield MemoryEstimate(id="form-estimate")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#form-error").display = False
        self.query_one("#field-data-path", Input).focus()  # what a user changes first
        self.validate()

    def read_form(self) -> new_run.RunRequest:
        """The request with what the fields say now."""
        req = self.request
        req.dataset = self.query_one("#field-data-path", Input).value
        req.model = self.query_one("#field-model-name-or-path", Input).value
        req.values = {key: self.query_one("#" + input_id(key), Input).value for key in req.fields}
        req.extra = self.query_one("#field-extra", Input).value
        return req

    @on(Select.Changed, "#field-preset")
    async def preset_changed(self, event: Select.Changed) -> None:
        if event.value == self.request.preset or event.value is Select.BLANK:
            return
        # Another preset may be another run type, with other fields: the form is built again.
        self.request = new_run.for_preset(str(event.value))
        await self.recompose()
        self.query_one("#form-error").display = False
        self.query_one("#field-preset").focus()
        self.validate()

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
        req = self.read_form()
        for key, value in (("data.path", req.dataset), ("model.name_or_path", req.model)):
            if not value.strip():  # blank would quietly mean the preset's own: say so instead
                what = "a JSON, JSONL or CSV file" if key == "data.path" else "a hub id, a local dir or builtin:tiny"
                return self._invalid(f"fill in {what}", key)
        try:
            cfg = new_run.build_config(req.preset, req.config_file, req.flags(), req.sets())
        except config_mod.ConfigError as exc:
            return self._invalid(str(exc), exc.key)
        self.query_one(MemoryEstimate).show(cfg)
        self.show_error(None)
        return True

    def _invalid(self, message: str, key: str | None) -> bool:
        self.query_one(MemoryEstimate).clear("until the error above is fixed")
        self.show_error(message, key)
        return False

    def show_error(self, message: str | None, key: str | None = None) -> None:
        """The error in the form's words under the fields (None: no error), its field marked."""
        from rich.markup import escape

        panel = self.query_one("#form-error", Static)
        self.error_key = None
        if message is None:
            panel.update("")
            panel.display = False
            return
        fields = self.request.fields
        key = new_run.key_in_error(message, key, fields)
        panel.update(f"[bold red]error:[/] {escape(new_run.in_form_words(message, key, fields))}")
        panel.display = True
        widget = self._field(key) if key else (self.query_one("#field-extra", Input) if "--set" in message else None)
        if widget is not None:
            widget.add_class("-invalid")
            self.error_key = key or "extra"

    def _field(self, key: str) -> Input | None:
        ids = {"data.path": "#field-data-path", "model.name_or_path": "#field-model-name-or-path"}
        found = self.query(ids.get(key) or "#" + input_id(key))
        return found.first(Input) if found else None

    def _focus_error(self) -> None:
        widget = self.query(".-invalid")
        if widget:
            widget.first().focus()  # scrolls the field into view

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        if not self.validate():
            self._focus_error()
            return
        resume = self.query("#resume")
        resume_from = self.request.resume_from if resume and resume.first(Checkbox).value else None
        self.query_one("#start", Button).disabled = True
        panel = self.query_one("#form-error", Static)
        panel.update("checking the data ...")
        panel.display = True
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
        self._focus_error()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.app.pop_screen()
