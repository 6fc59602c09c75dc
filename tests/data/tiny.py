"""The verses of the tiny_bible dataset (conftest.py) that the tests compare against."""

SPANISH = [
    "En el principio creó Dios los cielos y la tierra .",
    "Y la tierra estaba desordenada y vacía .",
    "Y dijo Dios : Sea la luz : y fué la luz .",
    "Y vió Dios que la luz era buena .",
]
ENGLISH = [
    "In the beginning God created the heaven and the earth .",
    "And the earth was without form , and void .",
    "And God said , Let there be light : and there was light .",
    "And God saw the light , that it was good .",
]
