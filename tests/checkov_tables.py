"""Write the LALR tables of checkov's JSONPath parsers into their packages, once per checkov venv
(`make install` runs this with checkov's interpreter).

bc_jsonpath_ng has PLY build its parse tables again for every expression it parses (it passes
`write_tables=0`), and checkov parses one for each `Fn::Sub` of a template: 14 of the ~24 s that
checkov spent on the packaged `sam.json` (tests/functional/test_package.py). PLY reads a table module
instead when its grammar signature matches the parser's, so tables written once are used only while
they are right: a changed grammar has another signature and is built again, as before.
"""

from __future__ import annotations

import os
import py_compile

import ply.yacc
from bc_jsonpath_ng import parser
from bc_jsonpath_ng.ext import parser as ext_parser

TABLES = "parser_jsonpath_parsetab"  # the name bc_jsonpath_ng's parse_token_stream asks PLY for


def main() -> None:
    for parser_class, module in ((parser.JsonPathParser, parser), (ext_parser.ExtentedJsonPathParser, ext_parser)):
        directory = os.path.dirname(str(module.__file__))
        ply.yacc.yacc(module=parser_class(), tabmodule=TABLES, outputdir=directory, write_tables=True,
                      start="jsonpath", debug=False, errorlog=ply.yacc.NullLogger())  # fmt: skip
        py_compile.compile(os.path.join(directory, f"{TABLES}.py"), doraise=True)


if __name__ == "__main__":
    main()
