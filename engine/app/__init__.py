"""The use-cases: the only API the faces (``tact``, the web apps, the workers, the demo) call.

Each use-case takes the process's :class:`engine.runtime.Runtime` (settings, engine,
checked vault, transport), runs its own transaction and returns a typed result: a
frozen dataclass, never a database row or a ``dict[str, Any]``. The CLI's ``--json``
and the coming REST API serialize these same objects, so the two cannot drift.

Faces parse input, call one use-case and format its result. They run no SQL and
build nothing themselves (no settings, engine, vault or transport): what a use-case
needs comes from the runtime, and the logic under it lives once, in the engine
packages below (``engine.campaigns``, ``engine.people``, ``engine.consent``, ...).

Modules: ``campaigns`` (create, validate, estimate, schedule, launch, send, pause,
resume, cancel, report, status, list), ``scheduling`` (``due_work``: what the beat and
``tact run`` both do), ``test_sends`` (one copy to a typed address), ``demo``;
the operator and person-facing ones sit beside them.
"""
