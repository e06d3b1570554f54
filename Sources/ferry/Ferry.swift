import AsyncHTTPClient
import ArgumentParser
import GRDB
@main struct Ferry: ParsableCommand { func run() {} }
