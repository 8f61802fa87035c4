"""The TUI's binding ids, the names a crew's `[keymap]` table remaps keys by.

The bindings themselves are declared with Textual in `cockpit/ui`, which core must not import;
this list lets `cockpit check` reject a misspelt id before the crew runs (Textual ignores an
unknown id silently, so the key would simply not move). tests/ui/test_keymap_ids.py asserts
that it equals the ids the UI declares, so the two cannot drift apart.
"""

from __future__ import annotations

BINDING_IDS: frozenset[str] = frozenset({
    # the app
    "cockpit.help", "cockpit.quit", "cockpit.quit_ctrl_c",
    # the cockpit screen
    "cockpit.approvals", "cockpit.events", "cockpit.focus_next", "cockpit.focus_previous",
    *(f"cockpit.focus_{n}" for n in range(1, 10)),
    "cockpit.follow", "cockpit.inspector", "cockpit.next_page", "cockpit.pause",
    "cockpit.pause_all", "cockpit.previous_page", "cockpit.redirect", "cockpit.restart",
    "cockpit.revive", "cockpit.stop", "cockpit.thinking", "cockpit.tool_details", "cockpit.zoom",
    # reading a pane: scrolling, search, copy, the pager, Markdown
    "cockpit.scroll_down", "cockpit.scroll_up", "cockpit.page_down", "cockpit.page_up",
    "cockpit.top", "cockpit.search", "cockpit.next_match", "cockpit.previous_match",
    "cockpit.clear_search", "cockpit.search_close", "cockpit.copy", "cockpit.pager",
    "cockpit.markdown",
    # the agents table (`v`)
    "cockpit.agents_table", "cockpit.agents_sort", "cockpit.agents_zoom", "cockpit.agents_down",
    "cockpit.agents_up",
    # the approval inbox and its arguments editor
    "cockpit.approval_edit", "cockpit.approvals_close", "cockpit.approve", "cockpit.approve_all",
    "cockpit.arguments_cancel", "cockpit.arguments_save", "cockpit.deny",
    # the event log, the state inspector, help
    "cockpit.events_close", "cockpit.events_older", "cockpit.board_edit", "cockpit.board_show",
    "cockpit.inspector_close", "cockpit.help_close", "cockpit.value_cancel", "cockpit.value_save",
    # dialogs
    "cockpit.confirm_no", "cockpit.confirm_yes", "cockpit.input_cancel", "cockpit.leave_detach",
    "cockpit.leave_stay", "cockpit.leave_stop", "cockpit.text_close",
    # replay
    "replay.back", "replay.end", "replay.faster", "replay.forward", "replay.slower",
    "replay.start", "replay.step", "replay.toggle",
})
