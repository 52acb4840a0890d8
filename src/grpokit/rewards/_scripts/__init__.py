"""Stand-alone scripts run in child processes (workers, sandbox harnesses).

They are executed by path, never imported by grpokit, and import nothing from grpokit: this folder
holds no module named like the standard library, because a script's folder comes first on its
``sys.path``.
"""
