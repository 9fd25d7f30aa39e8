"""The use-cases: the only API the faces (``tact``, the web apps, the workers, the demo) call.

Each use-case takes the process's :class:`engine.runtime.Runtime` (settings, engine,
checked vault, transport), runs its own transaction and returns a typed result: a
frozen dataclass, never a database row or a ``dict[str, Any]``. The CLI's ``--json``
and the coming REST API serialize these same objects, so the two cannot drift.

Faces parse input, call one use-case and format its result. They run no SQL and
build nothing themselves (no settings, engine, vault or transport): what a use-case
needs comes from the runtime, and the logic under it lives once, in the engine
packages below (``engine.campaigns``, ``engine.people``, ``engine.consent``, ...).

Modules: ``campaigns`` (create, validate, schedule, launch, send, pause, resume,
cancel, report, status, list, edit, clone, delete), ``scheduling`` (``due_work``:
what the beat and ``tact run`` both do), ``test_sends`` (marked copies to the
marketer's own addresses or the configured test list), ``estimates`` (what the gate
would do now, read-only), ``previews`` (each distinct version, as a contact or
locale), ``demo``; the operator and person-facing ones sit beside them.
"""
