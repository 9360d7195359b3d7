"""A dashboard session without a browser: Streamlit's own websocket (`/_stcore/stream`) and
its protobufs (BackMsg out, ForwardMsg in), as the browser's frontend speaks them.

Used by tests/test_serving.py and by benchmarks/bench_load.py (`--client websocket`), so that
twenty sessions cost the machine what the server does for them, not what twenty chromium
renderers cost: a session here is one connection and a parser of the server's messages. What it reproduces of the frontend:

- connect with the subprotocol "streamlit" (the frontend's own; without XSRF tokens, which
  the server checks only for the auth cookies of a city sign-in);
- the first `rerun_script` names the page by its address (`page_name`, as a deep link does);
  later ones switch pages by `page_script_hash` (as a click in the navigation does), taken
  from the server's `navigation` message;
- widgets are found by their `key=` (the element id ends in `-KEY`), and a form is submitted
  with every field's value and the submit button's trigger, as the frontend sends them;
- a run is over at `script_finished` (FINISHED_SUCCESSFULLY or FINISHED_WITH_COMPILE_ERROR);
  FINISHED_EARLY_FOR_RERUN (an `st.rerun()`) waits for the next run's end, as the browser
  does. Exception elements and error boxes drawn in the run are collected.

Big messages arrive in full (no `cached_message_hashes` are claimed), so nothing needs the
HTTP message cache. Not reproduced: components, file uploads, the browser's drawing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

STREAM_PATH = "_stcore/stream"
SUBPROTOCOL = "streamlit"
_DONE = {ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR}


@dataclass
class Run:
    """What one script run (from the request to its script_finished) sent back."""
    seconds: float = 0.0
    status: int | None = None
    widgets: dict[str, object] = field(default_factory=dict)   # key -> the widget's proto
    headings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)           # exceptions and error boxes
    page_not_found: bool = False
    messages: int = 0


class Session:
    """One dashboard session over the websocket. `async with Session(url) as s:`."""

    def __init__(self, url: str, timeout_s: float = 180.0):
        self.ws_url = url.replace("http://", "ws://").replace("https://", "wss://").rstrip("/") \
            + "/" + STREAM_PATH
        self.timeout_s = timeout_s
        self.pages: dict[str, str] = {}        # url_pathname -> page_script_hash
        # Every navigation the server sent: (Navigation.position, [url_pathname, ...]).
        self.navigations: list[tuple[int, list[str]]] = []
        self.page_script_hash = ""
        self._ws = None

    async def __aenter__(self) -> "Session":
        import websockets

        self._ws = await websockets.connect(self.ws_url, subprotocols=[SUBPROTOCOL],
                                            max_size=None, open_timeout=self.timeout_s,
                                            ping_interval=None)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._ws.close()

    async def rerun(self, page_name: str = "", page_script_hash: str = "",
                    widget_states: list | None = None) -> Run:
        """Send a rerun and read until its script has finished. Time from the send."""
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = ""
        state.page_name = page_name
        state.page_script_hash = page_script_hash
        state.context_info.timezone = "UTC"
        state.context_info.locale = "en-US"
        if widget_states:
            state.widget_states.widgets.extend(widget_states)
        started = time.monotonic()
        await self._ws.send(msg.SerializeToString())
        run = Run()
        await asyncio.wait_for(self._read_until_finished(run), self.timeout_s)
        run.seconds = time.monotonic() - started
        return run

    async def open_page(self, path: str) -> Run:
        """Open a page by its address: the first time (or a page not yet announced) as a
        deep link, later as the navigation's click does."""
        script_hash = self.pages.get(path)
        if script_hash is None:
            return await self.rerun(page_name=path)
        return await self.rerun(page_script_hash=script_hash)

    async def submit_form(self, fields: dict[str, str], button_key: str, previous: Run) -> Run:
        """Fill text fields (by key) and press the form's submit button (by key), with the
        ids the previous run's widgets had."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        states = []
        for key, value in fields.items():
            widget = WidgetState(id=previous.widgets[key].id)
            widget.string_value = value
            states.append(widget)
        states.append(WidgetState(id=previous.widgets[button_key].id, trigger_value=True))
        return await self.rerun(page_script_hash=self.page_script_hash, widget_states=states)

    async def _read_until_finished(self, run: Run) -> None:
        while True:
            data = await self._ws.recv()
            msg = ForwardMsg()
            msg.ParseFromString(data)
            run.messages += 1
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                self.page_script_hash = msg.new_session.page_script_hash
            elif kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash
                              for p in msg.navigation.app_pages}
                self.navigations.append((msg.navigation.position, list(self.pages)))
                self.page_script_hash = msg.navigation.page_script_hash
            elif kind == "page_not_found":
                run.page_not_found = True
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._note_element(run, msg.delta.new_element)
            elif kind == "script_finished":
                if msg.script_finished in _DONE:
                    run.status = msg.script_finished
                    return
                # An st.rerun(): the browser waits for the run it starts; so do we. What
                # that run draws replaces what this one drew (errors are kept).
                run.widgets.clear()
                run.headings.clear()

    @staticmethod
    def _note_element(run: Run, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            run.errors.append(f"{element.exception.type}: {element.exception.message}"[:200])
        elif kind == "alert" and element.alert.format == element.alert.ERROR:
            run.errors.append(element.alert.body.splitlines()[0][:200] if element.alert.body
                              else "error box")
        elif kind == "heading":
            run.headings.append(element.heading.body)
        else:
            widget = getattr(element, kind, None)
            widget_id = getattr(widget, "id", "") if widget is not None else ""
            if widget_id and "-" in widget_id:
                run.widgets[widget_id.rsplit("-", 1)[-1]] = widget
