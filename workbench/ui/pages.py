"""Pages built on worker threads, so a burst of page loads never stalls the clicks of tabs already open.

Bokeh builds a new browser session's document inside the server's event loop: loading the Session
and building the wizard (about 0.4 s each here, far more for a user script that loads its data)
for 20 page loads in a row held every open tab's clicks for tens of seconds. Here the document is
built on a small thread pool while the loop keeps serving; the document is new and no other thread
holds it yet, and it is handed to the loop's thread before its session goes live. The page is built
under Panel's per-thread current document, never Bokeh's ``patch_curdoc`` (one process-wide stack: a
build on a worker would make other sessions' callbacks see its document).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from bokeh.application.handlers.handler import Handler
from panel.io.application import Application
from panel.io.state import set_curdoc, state

PAGE_THREADS = 2  # builds are mostly Python (GIL-bound): two keep one slow script from holding up the rest


class _PageHandler(Handler):
    """Fills a document with the Panel object ``page()`` returns."""

    def __init__(self, page, title: str):
        super().__init__()
        self._page, self._title = page, title

    def modify_document(self, doc) -> None:
        with set_curdoc(doc):  # a context variable: this thread only
            try:
                page = self._page()
            except SystemExit as e:  # load_session's way of naming a bad script: an error, not the server's exit
                raise RuntimeError(str(e)) from None
            page.server_doc(doc, title=self._title)


class ThreadedPageApplication(Application):
    """A Panel application whose documents are built off the event loop (one per browser session)."""

    def __init__(self, *handlers, threads: int = PAGE_THREADS, **kwargs):
        super().__init__(*handlers, **kwargs)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="workbench-page")
        self._built: weakref.WeakSet = weakref.WeakSet()

    async def on_session_created(self, session_context) -> None:
        await super().on_session_created(session_context)
        doc = session_context._document  # Bokeh's own hooks reach the document the same way
        loop_thread = threading.get_ident()
        build = partial(Application.initialize_document, self, doc)
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, build)
        finally:
            # Panel records the building thread as the document's own; from now on it is the loop's
            state._thread_id_[doc] = loop_thread
            self._built.add(doc)

    def initialize_document(self, doc) -> None:
        if doc in self._built:  # built on a worker in on_session_created
            return
        super().initialize_document(doc)


def threaded_app(page, title: str) -> ThreadedPageApplication:
    """``page`` (a function returning a Panel object) as an application built off the event loop."""
    return ThreadedPageApplication(_PageHandler(page, title))
